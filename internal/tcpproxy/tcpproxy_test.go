package tcpproxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startEcho starts a line echo server on loopback, stopped by t.Cleanup.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// roundTrip sends one line through c and reads the echo.
func roundTrip(c net.Conn, line string) (string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustWork checks that a new connection through the proxy echoes.
func mustWork(t *testing.T, p *Proxy, line string) net.Conn {
	t.Helper()
	c := dial(t, p.Addr())
	got, err := roundTrip(c, line)
	if err != nil || got != line {
		t.Fatalf("round trip through proxy: got %q, %v; want %q, nil", got, err, line)
	}
	return c
}

// mustFail checks that a new connection through the proxy carries nothing.
func mustFail(t *testing.T, p *Proxy) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		return // refused outright is fine too
	}
	defer c.Close()
	if got, err := roundTrip(c, "x"); err == nil {
		t.Fatalf("round trip through a cut proxy: got %q, nil; want an error", got)
	}
}

func TestCutAndRestore(t *testing.T) {
	p := Start(t, startEcho(t))

	old := mustWork(t, p, "hello")
	if p.IsCut() {
		t.Fatalf("IsCut() = true before Cut")
	}

	p.Cut()
	if !p.IsCut() {
		t.Fatalf("IsCut() = false after Cut")
	}
	// The established connection is reset.
	if got, err := roundTrip(old, "again"); err == nil {
		t.Fatalf("round trip on a cut connection: got %q, nil; want an error", got)
	}
	// New connections are refused, however often the client tries.
	for i := 0; i < 3; i++ {
		mustFail(t, p)
	}
	p.Cut() // no-op

	p.Restore()
	if p.IsCut() {
		t.Fatalf("IsCut() = true after Restore")
	}
	mustWork(t, p, "back")
	mustWork(t, p, "and again")
}

func TestCloseIsIdempotentAndStopsEverything(t *testing.T) {
	p := Start(t, "http://"+startEcho(t))
	c := mustWork(t, p, "hello")
	p.Close()
	p.Close()
	if _, err := roundTrip(c, "after close"); err == nil {
		t.Fatalf("round trip after Close: want an error")
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("dial after Close succeeded, want refused")
	}
	p.Cut()     // no-op on a closed proxy
	p.Restore() // no-op on a closed proxy
}

func TestTargetDown(t *testing.T) {
	// A target with nothing listening: the client's connection is reset.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := Start(t, addr)
	mustFail(t, p)
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name, target, want string
		wantErr            bool
	}{
		{name: "host port", target: "127.0.0.1:2379", want: "127.0.0.1:2379"},
		{name: "url", target: "http://127.0.0.1:2379", want: "127.0.0.1:2379"},
		{name: "localhost", target: "localhost:1", want: "localhost:1"},
		{name: "ipv6 loopback", target: "[::1]:2379", want: "[::1]:2379"},
		{name: "not loopback", target: "10.0.0.1:2379", wantErr: true},
		{name: "host name", target: "example.com:2379", wantErr: true},
		{name: "no port", target: "127.0.0.1", wantErr: true},
		{name: "port zero", target: "127.0.0.1:0", wantErr: true},
		{name: "bad url", target: "http://[::1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTarget(tt.target)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseTarget(%q) = %q, nil; want an error", tt.target, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseTarget(%q) = %q, %v; want %q, nil", tt.target, got, err, tt.want)
			}
		})
	}
}
