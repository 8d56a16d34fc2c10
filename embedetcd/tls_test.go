package embedetcd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// memberTLS issues a certificate for name from ca and writes it with the
// CA certificate to a temp dir.
func memberTLS(t *testing.T, ca *pki.CA, name string) *TLSFiles {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(name, nil, pki.CertValidity, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := pki.Dir(t.TempDir())
	if err := d.WriteNode(ca.CertPEM(), certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return &TLSFiles{CertFile: d.Path(pki.CertFile), KeyFile: d.Path(pki.KeyFile), CAFile: d.Path(pki.CAFile)}
}

func newCAT(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// rawRequest sends one HTTP/1.1 request over TLS with cfg to addr and
// returns the status line, or the error of the handshake, write or read.
func rawRequest(addr string, cfg *tls.Config, method, path string) (string, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	body := `{"key":"aw==","value":"eA=="}` // k, x
	if method == "GET" {
		body = ""
	}
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, path, addr, len(body), body)
	if _, err := c.Write([]byte(req)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func hostOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

// TestTLSRefusesClientsAndPeersWithoutCertificate runs two members behind
// mutual TLS and checks that only holders of a certificate of the
// cluster's CA reach the client and peer ports.
func TestTLSRefusesClientsAndPeersWithoutCertificate(t *testing.T) {
	ctx := testCtx(t)
	ca, other := newCAT(t, "test"), newCAT(t, "other")
	c1 := FastTestConfig("m1", t.TempDir())
	c1.TLS = memberTLS(t, ca, "m1")
	m1 := startT(t, ctx, c1)
	c2 := FastTestConfig("m2", t.TempDir())
	c2.TLS = memberTLS(t, ca, "m2")
	m2 := joinT(t, ctx, c2, m1.ClientURL())
	for _, u := range []string{m1.ClientURL(), m1.PeerURL(), m2.ClientURL(), m2.PeerURL()} {
		if !strings.HasPrefix(u, "https://") {
			t.Fatalf("URL %q, want https://", u)
		}
	}

	member, err := c2.TLS.load()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m1.ClientURL(), m2.ClientURL()}, TLS: member,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	putEventually(t, ctx, cli, "k", "v")

	stranger, err := memberTLS(t, other, "stranger").load()
	if err != nil {
		t.Fatal(err)
	}
	noCert := &tls.Config{InsecureSkipVerify: true}
	for _, tc := range []struct {
		name, addr, method, path string
		cfg                      *tls.Config
		ok                       bool
	}{
		{"peer port, member certificate", hostOf(t, m1.PeerURL()), "GET", "/members", member, true},
		{"peer port, no certificate", hostOf(t, m1.PeerURL()), "GET", "/members", noCert, false},
		{"peer port, certificate of another CA", hostOf(t, m2.PeerURL()), "GET", "/members", stranger, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, err := rawRequest(tc.addr, tc.cfg, tc.method, tc.path)
			if tc.ok && (err != nil || !strings.Contains(status, " 200 ")) {
				t.Fatalf("%s %s = %q, %v; want 200", tc.method, tc.path, status, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("%s %s answered %q; want the handshake refused", tc.method, tc.path, status)
			}
		})
	}

	// The client port speaks gRPC only (etcd's HTTP gateway has its own
	// loopback listener): clients without a certificate of the CA are
	// refused there; the member's certificate works (cli above).
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{{"etcd client without certificate", noCert}, {"etcd client with a certificate of another CA", stranger}} {
		t.Run(tc.name, func(t *testing.T) {
			bare, err := clientv3.New(clientv3.Config{Endpoints: []string{m1.ClientURL(), m2.ClientURL()}, TLS: tc.cfg,
				DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				return // refused while dialing: fine
			}
			defer bare.Close()
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if _, err := bare.Get(cctx, "k"); err == nil {
				t.Fatal("Get succeeded")
			}
			if _, err := bare.Put(cctx, "k", "overwritten"); err == nil {
				t.Fatal("Put succeeded")
			}
		})
	}
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("Get(k) = %v, %v; want v", resp, err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	cfg := FastTestConfig("m1", t.TempDir())
	cfg.TLS = &TLSFiles{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key", CAFile: "/nonexistent-ca.crt"}
	if _, err := cfg.validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "TLS.CertFile") {
		t.Fatalf("validate with missing files: %v; want ErrInvalidConfig naming TLS.CertFile", err)
	}
	cfg.TLS = memberTLS(t, newCAT(t, "x"), "m1")
	cfg.TLS.CAFile = cfg.TLS.CertFile + ".missing"
	if _, err := cfg.validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "TLS.CAFile") {
		t.Fatalf("validate with a missing CA: %v; want ErrInvalidConfig naming TLS.CAFile", err)
	}
}
