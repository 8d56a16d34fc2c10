package clusterkit

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/embedetcd"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// joinServerName is the TLS server name (SNI) a joiner asks for: the HTTP
// API answers it with the cluster certificate chain, also when
// Options.HTTPTLS gives the API another certificate.
const joinServerName = "clusterkit-join"

// nodeTLS is a node's TLS material in secure embedded mode (see
// Options.InsecurePlaintext): the cluster CA it trusts, its own certificate
// (served by the HTTP API and its etcd member, presented to etcd), the CA
// key when this node can sign join requests, and the cluster secret that
// join and admin calls must carry. It lives in DataDir/tls (pki.Dir: files
// 0600, directory 0700). Immutable once made except for the certificate,
// which the holder replaces on renewal (certrenew.go): every TLS
// configuration of the node reads it from there at each handshake. Safe
// for concurrent use.
type nodeTLS struct {
	dir    pki.Dir
	holder *certHolder // leaf and CA certificate; the cluster CA pool
	ca     *pki.CA     // nil: this node cannot sign
	pin    string      // the CA's fingerprint
	secret string
}

// tlsDir is where a node keeps its TLS material.
func tlsDir(o *Options) pki.Dir { return pki.Dir(filepath.Join(o.DataDir, "tls")) }

// loadNodeTLS reads the material a node stored on an earlier start. The
// secret is the ClusterToken's, or the stored one when the token is empty.
func loadNodeTLS(o *Options) (*nodeTLS, error) {
	d := tlsDir(o)
	h, err := loadCertHolder(d)
	if err != nil {
		return nil, err
	}
	pin, err := d.CAFingerprint()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	t := &nodeTLS{dir: d, holder: h, pin: pin}
	if d.HasCA() {
		if t.ca, err = d.LoadCA(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTLS, err)
		}
	}
	if err := t.keepSecret(o); err != nil {
		return nil, err
	}
	return t, nil
}

// bootstrapTLS creates the cluster CA, this node's certificate for hosts,
// and (with an empty ClusterToken) a random secret, and stores them.
func bootstrapTLS(o *Options, hosts []string, now time.Time) (*nodeTLS, error) {
	ca, err := pki.NewCA(o.ClusterName, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	certPEM, keyPEM, err := ca.Issue(o.NodeID, hosts, pki.CertValidity, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	d := tlsDir(o)
	if err := d.WriteCA(ca); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	if err := d.WriteNode(ca.CertPEM(), certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	if o.ClusterToken == "" {
		secret, err := pki.NewSecret()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTLS, err)
		}
		if err := d.WriteSecret(secret); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTLS, err)
		}
	}
	return loadNodeTLS(o)
}

// storeJoinedTLS checks and stores what a join answer brought: the CA
// certificate (it must match the token's pin, when there is one), this
// node's certificate for key (signed by that CA), and the CA key when the
// answer holds one. Nothing is stored when a check fails.
func storeJoinedTLS(o *Options, key crypto.Signer, ans *joinResponse) (*nodeTLS, error) {
	bad := func(format string, args ...any) (*nodeTLS, error) {
		return nil, fmt.Errorf("%w: %w: join answer from %s: "+format, append([]any{ErrJoinFailed, ErrTLS, o.JoinAddr}, args...)...)
	}
	if ans.CACert == "" || ans.Cert == "" {
		return bad("no certificate")
	}
	if err := checkAnswer(ans, tokenPin(o.ClusterToken)); err != nil {
		return bad("%v", err)
	}
	d := tlsDir(o)
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	// The CA key first: the node certificate, written last, is what makes
	// the material count as present (pki.Dir.HasNode).
	if ans.CAKey != "" {
		if err := storeCAKey(d, ans); err != nil {
			return bad("%v", err)
		}
	}
	if err := d.WriteNode([]byte(ans.CACert), []byte(ans.Cert), keyPEM); err != nil {
		return bad("%v", err)
	}
	return loadNodeTLS(o)
}

// checkAnswer checks, before anything is stored, that the answer's CA is
// the pinned one (when pin is not empty) and signed the answer's
// certificate.
func checkAnswer(ans *joinResponse, pin string) error {
	caBlock, _ := pem.Decode([]byte(ans.CACert))
	certBlock, _ := pem.Decode([]byte(ans.Cert))
	if caBlock == nil || certBlock == nil {
		return fmt.Errorf("certificates are not PEM")
	}
	if pin != "" && pki.Fingerprint(caBlock.Bytes) != pin {
		return fmt.Errorf("CA %s is not the token's pin %s", pki.Fingerprint(caBlock.Bytes), pin)
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// storeCAKey stores the CA key of a join answer, after checking that it
// belongs to the CA certificate.
func storeCAKey(d pki.Dir, ans *joinResponse) error {
	pair, err := tls.X509KeyPair([]byte(ans.CACert), []byte(ans.CAKey))
	if err != nil {
		return fmt.Errorf("CA key: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("CA key cannot sign")
	}
	return d.WriteCA(&pki.CA{Cert: cert, Key: signer})
}

// keepSecret sets t.secret: the ClusterToken's secret, or the stored one.
// A given secret is stored too, so that a restart without a token still
// answers joins.
func (t *nodeTLS) keepSecret(o *Options) error {
	if s := tokenSecret(o.ClusterToken); s != "" {
		t.secret = s
		stored, err := t.dir.ReadSecret()
		if err == nil && stored != s {
			err = t.dir.WriteSecret(s)
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTLS, err)
		}
		return nil
	}
	s, err := t.dir.ReadSecret()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	if s == "" {
		return fmt.Errorf("%w: no ClusterToken and no secret in %s", ErrTLS, t.dir.Path(pki.SecretFile))
	}
	t.secret = s
	return nil
}

// token is the join token "ck1.<pin>.<secret>".
func (t *nodeTLS) token() string { return pki.Token{Pin: t.pin, Secret: t.secret}.String() }

// etcdFiles are the files the embedded etcd member serves and dials with.
func (t *nodeTLS) etcdFiles() *embedetcd.TLSFiles {
	return &embedetcd.TLSFiles{CertFile: t.dir.Path(pki.CertFile), KeyFile: t.dir.Path(pki.KeyFile), CAFile: t.dir.Path(pki.CAFile)}
}

// clientConfig is the TLS configuration of this node's etcd clients: the
// held certificate, read at every handshake.
func (t *nodeTLS) clientConfig() *tls.Config { return t.holder.ClientConfig() }

// serverConfig is the TLS configuration of the HTTP API with the cluster
// certificate (read from the holder at every handshake): a client
// certificate of the cluster CA is verified when given (a renewing node's,
// POST /cluster/certificate) and not required (joiners have none yet).
func (t *nodeTLS) serverConfig() *tls.Config {
	cfg := t.holder.ServerConfig()
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	return cfg
}

// certHosts are the names and addresses this node's certificate names, so
// that etcd's peers, which check names, accept it: the hosts of HTTPAddr,
// AdvertiseAddr and the etcd member's addresses (localhost and 127.0.0.1
// are always added by pki).
func certHosts(o *Options, advertise string, cfg embedetcd.Config) []string {
	var hosts []string
	for _, addr := range []string{o.HTTPAddr, advertise, cfg.ClientAddr, cfg.PeerAddr} {
		if host, _, err := net.SplitHostPort(addr); err == nil && !isUnspecifiedHost(host) {
			hosts = append(hosts, host)
		}
	}
	if cfg.AdvertiseHost != "" {
		hosts = append(hosts, cfg.AdvertiseHost)
	}
	return hosts
}

// tokenSecret and tokenPin are the parts of a ClusterToken (checked by
// New); both are empty for an empty token.
func tokenSecret(token string) string {
	t, _ := pki.ParseToken(token)
	return t.Secret
}

func tokenPin(token string) string {
	t, _ := pki.ParseToken(token)
	return t.Pin
}

// loadTLS sets r.tls from DataDir/tls when the node is secure and stored
// its material on an earlier start.
func (r *run) loadTLS() error {
	o := &r.ck.opts
	if !o.secure() || !tlsDir(o).HasNode() {
		return nil
	}
	t, err := loadNodeTLS(o)
	if err != nil {
		return err
	}
	r.tls = t
	return nil
}

// bootstrapEmbedded starts a new cluster's first member (or restarts a
// bootstrap node without etcd data), creating the cluster CA first when
// the node is secure and has none, and logs the join token.
func (r *run) bootstrapEmbedded(ctx context.Context, cfg embedetcd.Config) error {
	o := &r.ck.opts
	if o.secure() && r.tls == nil {
		t, err := bootstrapTLS(o, certHosts(o, r.advertiseAddr(), cfg), time.Now())
		if err != nil {
			return err
		}
		r.tls = t
		r.ck.log.Info("created the cluster CA; other nodes join with this token (ClusterToken)",
			zap.String("join_token", t.token()), zap.String("ca_pin", t.pin))
	}
	return r.startEmbedded(ctx, r.withTLS(cfg))
}

// withTLS returns cfg with the member's TLS files when the node is secure.
func (r *run) withTLS(cfg embedetcd.Config) embedetcd.Config {
	if r.tls != nil {
		cfg.TLS = r.tls.etcdFiles()
	}
	return cfg
}

// JoinToken returns the token other nodes join this cluster with,
// "ck1.<ca-sha256>.<secret>" (Options.ClusterToken): the pin lets a
// joining node check the cluster's certificate before it sends the
// secret. The secret is this node's: its ClusterToken's, or the one it
// generated (DataDir/tls/secret). It fails with ErrNotStarted before Start
// has set up the node's certificate, with ErrTLS when the node runs
// without the cluster's TLS (InsecurePlaintext or external etcd; GET
// /cluster/token still answers there), and with ErrUnauthorized after a
// rotation (RotateSecret) until Options.ClusterToken holds the rotated
// token. The token is a secret: give it only to nodes that may join.
// Safe for concurrent use.
func (ck *ClusterKit) JoinToken() (string, error) {
	if !ck.opts.secure() {
		return "", fmt.Errorf("%w: no join token: the node runs without cluster TLS (InsecurePlaintext or external etcd)", ErrTLS)
	}
	r := ck.active.Load()
	if r == nil || r.tls == nil {
		return "", fmt.Errorf("%w: the join token is known once Start has set up the node's certificate", ErrNotStarted)
	}
	if err := ck.checkCurrentSecret(r.tls.secret); err != nil {
		return "", err
	}
	return r.tls.token(), nil
}
