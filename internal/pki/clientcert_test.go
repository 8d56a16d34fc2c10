package pki

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// newClient signs a client-only certificate for name through a CSR (that
// asks for host names, which it drops) and returns it loaded as a
// tls.Certificate (Leaf parsed).
func newClient(t *testing.T, ca *CA, name string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := signedCSR(t, ca.SignClientCSR, name)
	d := Dir(t.TempDir())
	if err := d.WriteClient(ca.CertPEM(), certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(d.Path(ClientCertFile), d.Path(ClientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestClientCertificateIsClientOnly: SignClientCSR drops the request's
// host names and issues client usage only; such a certificate dials a
// member's mutual-TLS listener, but a member dialing a server that shows
// it refuses the server (pinned or by pool), and a certificate it signs
// does not verify.
func TestClientCertificateIsClientOnly(t *testing.T) {
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cc := newClient(t, ca, "gateway-1")
	leaf := cc.Leaf
	if leaf.Subject.CommonName != "gateway-1" || leaf.IsCA || len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 ||
		!slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || leaf.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Fatalf("client certificate: got CN %q, CA %v, SANs %v %v, usages %v / %v; want gateway-1, client auth only, no SANs",
			leaf.Subject.CommonName, leaf.IsCA, leaf.DNSNames, leaf.IPAddresses, leaf.ExtKeyUsage, leaf.KeyUsage)
	}
	member, _ := newNode(t, ca, "node-1")

	t.Run("dials a member", func(t *testing.T) {
		addr := serveTLS(t, ServerConfig(member, ca.Pool()))
		if err := dialTLS(addr, PinnedClientConfigWith(ca.Fingerprint(), cc)); err != nil {
			t.Fatalf("client certificate refused by a member: %v", err)
		}
	})
	t.Run("cannot serve", func(t *testing.T) {
		addr := serveTLS(t, ServerConfig(cc, ca.Pool()))
		for name, cfg := range map[string]*tls.Config{
			"pool":   ClientConfig(member, ca.Pool()),
			"pinned": PinnedClientConfigWith(ca.Fingerprint(), member),
			"stdlib": {RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{member}},
		} {
			if err := dialTLS(addr, cfg); err == nil || (name != "stdlib" && !errors.Is(err, ErrPinMismatch)) {
				t.Errorf("%s: a server with a client-only certificate: dial error %v, want a refusal", name, err)
			}
		}
	})
	t.Run("cannot sign", func(t *testing.T) {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "forged"},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		key, _ := NewKey()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, leaf, key.Public(), cc.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		forged, _ := x509.ParseCertificate(der)
		inter := x509.NewCertPool()
		inter.AddCert(leaf)
		if _, err := forged.Verify(x509.VerifyOptions{Roots: ca.Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			t.Fatal("a certificate signed by the client certificate verifies against the CA")
		}
	})
	t.Run("bad names", func(t *testing.T) {
		key, _ := NewKey()
		for _, name := range []string{"a/b", "gate way", strings.Repeat("x", 65)} {
			csr, err := NewCSR(key, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ca.SignClientCSR(csr, CertValidity, time.Now()); !errors.Is(err, ErrInvalidCSR) {
				t.Errorf("SignClientCSR(name %q): error %v, want ErrInvalidCSR", name, err)
			}
		}
	})
}

// PinnedClientConfigWith is PinnedClientConfig presenting cert.
func PinnedClientConfigWith(pin string, cert tls.Certificate) *tls.Config {
	cfg := PinnedClientConfig(pin)
	cfg.Certificates = []tls.Certificate{cert}
	return cfg
}

// serveTLS accepts TLS connections on a loopback port until the test
// ends, writing "ok" after each completed handshake.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dialTLS completes a handshake and reads the server's "ok".
func dialTLS(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	b := make([]byte, 2)
	if _, err := c.Read(b); err != nil {
		return err
	}
	if string(b) != "ok" {
		return errors.New("no answer")
	}
	return nil
}
