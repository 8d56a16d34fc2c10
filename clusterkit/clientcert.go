package clusterkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// ClientCertRequest asks a node for a client certificate of the cluster
// CA (RequestClientCertificate).
type ClientCertRequest struct {
	// NodeAddr is the HTTP address (host:port) of any node that keeps
	// the CA key (an etcd member; in a cluster of up to MaxVoters nodes,
	// any node).
	NodeAddr string
	// Token is the cluster's join token, "ck1.<ca-sha256>.<secret>"
	// (ClusterKit.JoinToken, `clusterkit token`). The node's certificate
	// chain must hold the CA it pins before the secret is sent; a plain
	// secret is refused, since it cannot authenticate the cluster.
	Token string
	// Name is the certificate's common name, which names the client in
	// the node's log (and is the etcd user should etcd auth be enabled):
	// 1 to 64 characters of [A-Za-z0-9._-].
	Name string
	// Dir receives ca.crt, client.crt and client.key (created 0700, the
	// files 0600, each replaced whole).
	Dir string
	// ClusterName, when set, refuses a node of another cluster; default:
	// whichever cluster the node serves.
	ClusterName string
}

// ClientCertificate is what RequestClientCertificate wrote.
type ClientCertificate struct {
	// Cluster is the name of the node's cluster.
	Cluster string
	// Endpoints are the etcd client URLs the node answered with.
	Endpoints []string
	// CertFile, KeyFile and CAFile are the paths of the client
	// certificate, its key and the cluster CA certificate.
	CertFile, KeyFile, CAFile string
	// NotAfter is when the certificate expires (pki's one year, or the
	// CA's end if sooner). It is not renewed: request a new one before.
	NotAfter time.Time
}

// EtcdConfig returns the etcd configuration that reaches the cluster's
// embedded etcd with this certificate, for RouterOptions.Etcd.
func (c *ClientCertificate) EtcdConfig() EtcdConfig {
	return EtcdConfig{Endpoints: slices.Clone(c.Endpoints), CertFile: c.CertFile, KeyFile: c.KeyFile, CAFile: c.CAFile}
}

// RequestClientCertificate gets a client certificate of the cluster CA for
// a process that is not a node (a Router, the CLI, a gateway) through the
// join endpoint of the node at req.NodeAddr, without registering anything:
// it makes the key here and sends only a certificate request; the node
// answers with a certificate for client authentication only (it cannot
// serve TLS nor sign), the CA certificate and the etcd client URLs, never
// the CA key. It checks the answer (the CA is the token's, the certificate
// is client-only, for req.Name and this key) before it writes the files.
//
// The certificate grants what etcd grants any certificate of the cluster
// CA: without etcd auth, full access to the cluster's etcd. Keep the key
// as you keep the token.
//
// Errors wrap ErrInvalidOptions (a field of req; nothing is sent),
// ErrUnauthorized (the node refused the token's secret), ErrTLS (the node
// does not hold the token's CA, or answered with a certificate that is
// not what was asked) or ErrJoinFailed (unreachable, or a refusal such as
// a cluster without TLS); nothing is written then. ctx bounds the call;
// an unreachable node is tried three times.
func RequestClientCertificate(ctx context.Context, req ClientCertRequest) (*ClientCertificate, error) {
	tok, err := req.check()
	if err != nil {
		return nil, err
	}
	key, csr, err := newJoinKey(req.Name, nil)
	if err != nil {
		return nil, err
	}
	tlsCfg := pki.PinnedClientConfig(tok.Pin)
	tlsCfg.ServerName = joinServerName
	target := joinTarget{addr: req.NodeAddr, field: "NodeAddr", cluster: req.ClusterName, attempts: 3}
	jr := &joinRequest{NodeID: req.Name, Cluster: req.ClusterName, CSR: csr, Client: true}
	ans, err := requestJoin(ctx, target, jr, tok.Secret, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("clusterkit: client certificate from %s: %w", req.NodeAddr, err)
	}
	leaf, err := checkClientCert(ans, key, tok.Pin, req.Name)
	if err != nil {
		return nil, fmt.Errorf("clusterkit: client certificate from %s: %w", req.NodeAddr, err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTLS, err)
	}
	dir := pki.Dir(req.Dir)
	if err := dir.WriteClient([]byte(ans.CACert), []byte(ans.Cert), keyPEM); err != nil {
		return nil, fmt.Errorf("%w: write client certificate: %v", ErrTLS, err)
	}
	return &ClientCertificate{Cluster: ans.Cluster, Endpoints: ans.Endpoints, NotAfter: leaf.NotAfter,
		CertFile: dir.Path(pki.ClientCertFile), KeyFile: dir.Path(pki.ClientKeyFile), CAFile: dir.Path(pki.CAFile)}, nil
}

// check validates req and returns its parsed token.
func (req ClientCertRequest) check() (pki.Token, error) {
	if _, port, err := net.SplitHostPort(req.NodeAddr); err != nil || port == "" {
		return pki.Token{}, invalid("ClientCertRequest.NodeAddr", "must be a node's HTTP host:port", req.NodeAddr)
	}
	tok, err := pki.ParseToken(req.Token)
	if err != nil || tok.Pin == "" {
		return pki.Token{}, invalid("ClientCertRequest.Token", "must be the join token ck1.<ca-sha256>.<secret> (a plain secret cannot authenticate the cluster)", redactedToken(req.Token))
	}
	if len(req.Name) > 64 || !namePattern.MatchString(req.Name) {
		return pki.Token{}, invalid("ClientCertRequest.Name", "must be 1 to 64 characters of [A-Za-z0-9._-]", req.Name)
	}
	if req.Dir == "" {
		return pki.Token{}, invalid("ClientCertRequest.Dir", "must name the directory for the files", req.Dir)
	}
	if req.ClusterName != "" && (len(req.ClusterName) > 64 || !namePattern.MatchString(req.ClusterName)) {
		return pki.Token{}, invalid("ClientCertRequest.ClusterName", "must be 1 to 64 characters of [A-Za-z0-9._-]", req.ClusterName)
	}
	return tok, nil
}

// redactedToken shows a token's shape without any of its secret.
func redactedToken(s string) string {
	if strings.HasPrefix(s, "ck1.") {
		return fmt.Sprintf("ck1.… (%d characters)", len(s))
	}
	return fmt.Sprintf("(%d characters, no ck1. prefix)", len(s))
}

// checkClientCert checks a join answer to a client's request: the CA is
// the one pin names, no CA key came with it (a node that predates client
// certificates would sign a member's certificate and send its key), and
// the certificate is for name and key, signed by the CA, client-only.
func checkClientCert(ans *joinResponse, key *ecdsa.PrivateKey, pin, name string) (*x509.Certificate, error) {
	if ans.CAKey != "" {
		return nil, fmt.Errorf("%w: the node answered with a member's certificate and the CA key, not a client certificate: it predates client certificates; ask an upgraded node", ErrTLS)
	}
	ca, err := parseCertPEM([]byte(ans.CACert))
	if err != nil || !ca.IsCA || pki.Fingerprint(ca.Raw) != pin {
		return nil, fmt.Errorf("%w: the answer's CA certificate is not the CA the token pins", ErrTLS)
	}
	leaf, err := parseCertPEM([]byte(ans.Cert))
	if err != nil {
		return nil, fmt.Errorf("%w: the answer's certificate: %v", ErrTLS, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w: the answer's certificate does not verify against the cluster CA: %v", ErrTLS, err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !ok || !pub.Equal(&key.PublicKey):
		return nil, fmt.Errorf("%w: the answer's certificate is not for this request's key", ErrTLS)
	case leaf.IsCA || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}):
		return nil, fmt.Errorf("%w: the answer's certificate is not client-only (usages %v, CA %v)", ErrTLS, leaf.ExtKeyUsage, leaf.IsCA)
	case leaf.Subject.CommonName != name:
		return nil, fmt.Errorf("%w: the answer's certificate names %q, not %q", ErrTLS, leaf.Subject.CommonName, name)
	}
	return leaf, nil
}
