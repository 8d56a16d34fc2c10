package clusterkit

import (
	"crypto/tls"
	"fmt"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// secure reports whether the embedded etcd, the joins and the HTTP API use
// the cluster's TLS (secure embedded mode, the default).
func (o *Options) secure() bool { return !o.InsecurePlaintext && len(o.Etcd.Endpoints) == 0 }

// checkSecurity checks ClusterToken and HTTPTLS. Errors name the field but
// never print the token.
func (o *Options) checkSecurity() error {
	if o.ClusterToken != "" {
		if _, err := pki.ParseToken(o.ClusterToken); err != nil {
			return fmt.Errorf("%w: ClusterToken must be ck1.<64 hex>.<secret> or a plain secret: %w", ErrInvalidOptions, err)
		}
	}
	if o.secure() && o.JoinAddr != "" && !o.Bootstrap && o.ClusterToken == "" && !tlsDir(o).HasNode() {
		return invalid("ClusterToken", "is required to join a secure cluster (the first node's JoinToken, ck1.…) unless DataDir/tls holds this node's certificate", "")
	}
	if h := o.HTTPTLS; h != nil {
		if h.CertFile == "" || h.KeyFile == "" {
			return invalid("HTTPTLS", "needs CertFile and KeyFile", h.CertFile+" / "+h.KeyFile)
		}
	}
	return nil
}

// httpTLSConfig loads Options.HTTPTLS: the API's certificate and, with a
// ClientCAFile, the client certificate requirement. nil without HTTPTLS.
func httpTLSConfig(h *HTTPTLSOptions) (*tls.Config, error) {
	if h == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(h.CertFile, h.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: HTTPTLS.CertFile %q / KeyFile %q: %v", ErrInvalidOptions, h.CertFile, h.KeyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if h.ClientCAFile != "" {
		pool, err := pki.ReadPool(h.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: HTTPTLS.ClientCAFile: %w", ErrInvalidOptions, err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
