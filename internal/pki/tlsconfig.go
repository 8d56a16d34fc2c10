package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// ServerConfig is a TLS server configuration presenting cert and requiring
// a client certificate signed by the CA in pool (mutual TLS).
func ServerConfig(cert tls.Certificate, pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// ClientConfig is a TLS client configuration presenting cert and trusting
// only the CA in pool. Server names are not checked: the cluster's private
// CA signs only members, and members are reached by addresses (IPs, names)
// that need not be in their certificates.
func ClientConfig(cert tls.Certificate, pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// Verification is done in VerifyConnection against pool alone.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyChain(cs.PeerCertificates, pool)
		},
	}
}

// PinnedClientConfig is a TLS client configuration that accepts a server
// only if the chain it presents contains a certificate whose SHA-256 is pin
// and the leaf is signed by that certificate. It presents no client
// certificate: a joiner uses it before it has one. An empty pin accepts any
// server (a plain-secret token cannot authenticate the cluster; the caller
// says so in its log).
func PinnedClientConfig(pin string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if pin == "" {
				return nil
			}
			return VerifyPin(cs.PeerCertificates, pin)
		},
	}
}

// VerifyPin checks that chain (leaf first) holds a CA certificate whose
// fingerprint is pin and that the leaf verifies against it.
func VerifyPin(chain []*x509.Certificate, pin string) error {
	for _, c := range chain {
		if c.IsCA && Fingerprint(c.Raw) == pin {
			pool := x509.NewCertPool()
			pool.AddCert(c)
			return verifyChain(chain, pool)
		}
	}
	return fmt.Errorf("%w: no certificate with fingerprint %s in the chain of %d", ErrPinMismatch, pin, len(chain))
}

// verifyChain checks a server's chain: the leaf must be signed by the CA
// in pool and allow server use (a client-only certificate the CA issued
// to a router or a tool cannot pose as a member).
func verifyChain(chain []*x509.Certificate, pool *x509.CertPool) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate presented", ErrPinMismatch)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:     pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPinMismatch, err)
	}
	return nil
}

// ExpiresIn returns how long cert (its Leaf, or its first certificate) stays
// valid after now; negative once expired.
func ExpiresIn(cert tls.Certificate, now time.Time) (time.Duration, error) {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return 0, fmt.Errorf("%w: empty certificate", ErrInvalidFiles)
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrInvalidFiles, err)
		}
	}
	return leaf.NotAfter.Sub(now), nil
}
