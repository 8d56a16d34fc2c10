// Package tcpproxy is a loopback TCP proxy for tests whose traffic can be cut
// and restored, so that a test can cut a client off from a running server
// (for example an etcd client from its etcd) without stopping the server.
//
// Typical use:
//
//	p := tcpproxy.Start(t, srv.Endpoints()[0]) // "http://127.0.0.1:2379" or "127.0.0.1:2379"
//	cli := newClient("http://" + p.Addr())
//	p.Cut()     // every proxied connection is reset, new ones are refused
//	p.Restore() // new connections are proxied again
//
// The proxy listens on 127.0.0.1 on a random port that it keeps for its whole
// life (also while cut), so clients can reconnect to the same address after
// Restore.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialTimeout bounds the proxy's dial to the target.
const dialTimeout = 5 * time.Second

// Proxy forwards TCP connections from Addr to a target address. Its methods
// are safe for concurrent use. Create it with Start; the zero value is not
// usable.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // accept loop and every link's goroutines

	mu     sync.Mutex
	cut    bool
	closed bool
	links  map[*link]struct{}
	// stalled is non-nil while the proxy is stalled and is closed when
	// the stall ends (Unstall, Cut or Close).
	stalled chan struct{}
}

// link is one proxied connection: the accepted client side and, once dialed,
// the server side.
type link struct {
	client net.Conn
	server net.Conn // nil until dialed
}

// Start starts a proxy listening on a random 127.0.0.1 port that forwards
// to target, given as "host:port" or as a URL such as "http://host:port"
// (only the host:port part is used). The target must be a loopback address.
// Start registers Close with t.Cleanup and fails the test (t.Fatalf) if the
// target is malformed or not loopback, or if it cannot listen.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	hostport, err := parseTarget(target)
	if err != nil {
		t.Fatalf("tcpproxy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcpproxy: listen: %v", err)
	}
	p := &Proxy{target: hostport, ln: ln, links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// parseTarget returns the host:port of target and checks that it is a
// loopback address.
func parseTarget(target string) (string, error) {
	hostport := target
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			return "", err
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if port == "" || port == "0" {
		return "", &net.AddrError{Err: "target needs a concrete port", Addr: target}
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", &net.AddrError{Err: "target must be a loopback address", Addr: target}
	}
	return hostport, nil
}

// Addr returns the proxy's listening address, "127.0.0.1:port". It does not
// change over the proxy's life.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the host:port the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Cut resets every proxied connection (both sides are closed with an RST)
// and makes the proxy refuse new connections (they are accepted and reset
// at once) until Restore. When Cut returns no byte passes through the proxy
// any more. Cutting a cut or closed proxy is a no-op.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.cut = true
	p.unstallLocked()
	p.resetLinksLocked()
}

// Stall freezes every connection without closing it, like a peer whose
// process is stopped (SIGSTOP): connections stay open and new ones are
// accepted, but no byte is passed on until Unstall (or Cut, or Close).
// Stalling a stalled proxy is a no-op.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil && !p.closed {
		p.stalled = make(chan struct{})
	}
}

// IsStalled reports whether the proxy is stalled.
func (p *Proxy) IsStalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled != nil
}

// Unstall ends a stall: the bytes held back are passed on.
func (p *Proxy) Unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unstallLocked()
}

func (p *Proxy) unstallLocked() {
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
}

// waitUnstalled returns once the proxy is not stalled.
func (p *Proxy) waitUnstalled() {
	p.mu.Lock()
	ch := p.stalled
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// Restore makes the proxy accept and forward new connections again.
// Connections reset by Cut stay closed; clients reconnect by themselves.
// Restoring a proxy that is not cut, or is closed, is a no-op.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// IsCut reports whether the proxy is cut.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Close stops the proxy: it closes the listener, resets every connection
// and waits for all of the proxy's goroutines. It is idempotent and is
// called by the test's cleanup.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.ln.Close()
		p.unstallLocked()
		p.resetLinksLocked()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// resetLinksLocked closes both sides of every link. p.mu must be held.
func (p *Proxy) resetLinksLocked() {
	for l := range p.links {
		reset(l.client)
		if l.server != nil {
			reset(l.server)
		}
		delete(p.links, l)
	}
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			// A transient accept error (e.g. too many open files): do not
			// spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			reset(c)
			continue
		}
		l := &link{client: c}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve dials the target for l and copies bytes both ways until either side
// ends or the link is reset.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, dialTimeout)
	p.mu.Lock()
	if _, live := p.links[l]; !live || err != nil {
		// Cut or closed while dialing, or the target is down.
		delete(p.links, l)
		p.mu.Unlock()
		reset(l.client)
		if s != nil {
			reset(s)
		}
		return
	}
	l.server = s
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(s, l.client) }()
	go func() { defer wg.Done(); p.pipe(l.client, s) }()
	wg.Wait()

	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
	l.client.Close()
	s.Close()
}

// pipe copies from src to dst, holding each chunk back while the proxy is
// stalled; when src ends it half-closes dst (so a clean EOF is passed on)
// or, on error, closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	err := p.copy(dst, src)
	if err == nil {
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
			return
		}
	}
	dst.Close()
	src.Close()
}

// copy is io.Copy with a wait for the end of a stall before each write.
func (p *Proxy) copy(dst, src net.Conn) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.waitUnstalled()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// reset closes c so that the peer sees a connection reset rather than a
// clean EOF.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
