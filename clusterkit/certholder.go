package clusterkit

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// certHolder holds this node's current certificate (leaf + CA, Leaf
// parsed) and the CA pool it trusts. Every TLS configuration of the node
// takes its certificate from here through GetCertificate and
// GetClientCertificate, so a renewed certificate (Replace) is used by the
// next handshake without a restart; connections already open keep the
// certificate they were made with. The pool never changes: renewal keeps
// the cluster's CA. Safe for concurrent use.
type certHolder struct {
	pool *x509.CertPool
	cur  atomic.Pointer[tls.Certificate]
}

// loadCertHolder reads the node certificate and CA from dir. Errors wrap
// ErrTLS.
func loadCertHolder(dir pki.Dir) (*certHolder, error) {
	cert, pool, err := dir.LoadNode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTLS, err)
	}
	h := &certHolder{pool: pool}
	h.Replace(cert)
	return h, nil
}

// Current returns the certificate in use; its Leaf is set. Read-only.
func (h *certHolder) Current() *tls.Certificate { return h.cur.Load() }

// Replace makes cert the certificate of every later handshake. It parses
// cert's leaf if cert.Leaf is nil (a certificate that does not parse is
// kept out).
func (h *certHolder) Replace(cert tls.Certificate) {
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return
		}
		cert.Leaf = leaf
	}
	h.cur.Store(&cert)
}

// GetCertificate is a tls.Config.GetCertificate callback.
func (h *certHolder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cur.Load(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate callback.
func (h *certHolder) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return h.cur.Load(), nil
}

// ServerConfig is pki.ServerConfig (mutual TLS, clients verified against
// the cluster CA) with the certificate taken from h at every handshake.
func (h *certHolder) ServerConfig() *tls.Config {
	cfg := pki.ServerConfig(tls.Certificate{}, h.pool)
	cfg.Certificates, cfg.GetCertificate = nil, h.GetCertificate
	return cfg
}

// ClientConfig is pki.ClientConfig (the server verified against the
// cluster CA) presenting the certificate held by h at every handshake.
func (h *certHolder) ClientConfig() *tls.Config {
	cfg := pki.ClientConfig(tls.Certificate{}, h.pool)
	cfg.Certificates, cfg.GetClientCertificate = nil, h.GetClientCertificate
	return cfg
}
