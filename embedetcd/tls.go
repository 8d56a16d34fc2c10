package embedetcd

import (
	"crypto/tls"
	"fmt"
	"net/http"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// TLSFiles are the PEM files of a member's mutual TLS: one certificate and
// key, usable as server and client (as internal/pki issues them), and the
// CA that signs every member's and client's certificate.
//
// With Config.TLS set, the member's client and peer listeners serve https
// only and require a client certificate signed by the CA (a connection
// without one fails in the TLS handshake), and the member's own clients —
// the one Join uses for learner add and promote, the peer probe after an
// unexpected stop — present the certificate. Peers check a server's name
// against its certificate (etcd's own peer client does), so the certificate
// must name the host of the member's advertised peer URL; client
// certificates are not checked against the connecting address (etcd's
// --peer-skip-client-san-verification), because the private CA signs
// members only.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// load reads the files, for the member's own clients; the error names the
// file and wraps ErrInvalidConfig.
func (f *TLSFiles) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS.CertFile %q / TLS.KeyFile %q: %v", ErrInvalidConfig, f.CertFile, f.KeyFile, err)
	}
	pool, err := pki.ReadPool(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS.CAFile: %v", ErrInvalidConfig, err)
	}
	return pki.ClientConfig(cert, pool), nil
}

// info is etcd's description of one listener's mutual TLS.
func (f *TLSFiles) info(s *settings) transport.TLSInfo {
	return transport.TLSInfo{
		CertFile:            f.CertFile,
		KeyFile:             f.KeyFile,
		TrustedCAFile:       f.CAFile,
		ClientCertAuth:      true,
		SkipClientSANVerify: true,
		Logger:              s.etcdLog,
	}
}

// scheme is the URL scheme of the member's listeners.
func (s *settings) scheme() string {
	if s.TLS != nil {
		return "https"
	}
	return "http"
}

// peerHTTPTransport is a transport for other members' peer URLs, with the
// member's certificate when it uses TLS. Callers close its idle
// connections.
func (s *settings) peerHTTPTransport() *http.Transport {
	return &http.Transport{DisableKeepAlives: true, TLSClientConfig: s.clientTLS}
}
