package clusterkit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// tlsProbeTimeout bounds the handshake that explains why a TLS etcd does
// not answer.
const tlsProbeTimeout = 2 * time.Second

// check validates the credential options of external etcd.
func (c *EtcdConfig) check() error {
	files := c.CertFile != "" || c.KeyFile != "" || c.CAFile != ""
	switch {
	case c.TLS != nil && files:
		return invalid("Etcd.TLS", "cannot be set together with Etcd.CertFile/KeyFile/CAFile", "both")
	case (c.CertFile == "") != (c.KeyFile == ""):
		return invalid("Etcd.CertFile/KeyFile", "must be set together", c.CertFile+"/"+c.KeyFile)
	case (c.Username == "") != (c.Password == ""):
		// etcd's client silently skips authentication with only one.
		return invalid("Etcd.Username/Password", "must be set together", "user "+c.Username)
	}
	if c.TLS == nil && !files {
		return nil
	}
	for _, ep := range c.Endpoints {
		if strings.HasPrefix(ep, "http://") {
			return invalid("Etcd.Endpoints", "must be https:// when TLS is configured (etcd's client drops TLS for http://)", ep)
		}
	}
	return nil
}

// tlsConfig returns the etcd client's TLS configuration: Etcd.TLS, or one
// built from Etcd.CertFile/KeyFile/CAFile (read now), or nil. Errors wrap
// ErrTLS and name the file.
func (c *EtcdConfig) tlsConfig() (*tls.Config, error) {
	if c.TLS != nil || (c.CertFile == "" && c.CAFile == "") {
		return c.TLS, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: Etcd.CertFile %q / Etcd.KeyFile %q: %v", ErrTLS, c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: Etcd.CAFile: %v", ErrTLS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%w: Etcd.CAFile %q holds no PEM certificate", ErrTLS, c.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// etcdAccessError explains why etcd at endpoints refused or did not
// answer this node: wrong user or password, missing permission on the
// cluster's prefix, or a TLS problem found by a handshake of its own
// (etcd's client only reports a timeout for those; external etcd only).
// It returns nil when err is none of these.
func (ck *ClusterKit) etcdAccessError(endpoints []string, err error) error {
	user := ck.opts.Etcd.Username
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("%w: etcd %v refused user %q: wrong password or no such user", ErrUnauthorized, endpoints, user)
	case errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrInvalidAuthToken):
		return fmt.Errorf("%w: etcd %v requires authentication: set Etcd.Username and Etcd.Password (or a client certificate etcd maps to a user)",
			ErrUnauthorized, endpoints)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		if user == "" {
			user = "of the client certificate"
		}
		return fmt.Errorf("%w: etcd %v: user %q lacks read-write permission on %s (etcdctl role grant-permission --prefix <role> readwrite %s)",
			ErrUnauthorized, endpoints, user, ck.keys.root, ck.keys.root)
	}
	if len(ck.opts.Etcd.Endpoints) == 0 {
		return nil // embedded etcd: the client's TLS is the cluster's own
	}
	cfg, cerr := ck.opts.Etcd.tlsConfig()
	if cerr != nil {
		return cerr
	}
	for _, ep := range endpoints {
		if perr := probeTLS(ep, cfg); perr != nil {
			return fmt.Errorf("%w: etcd %s: %v", ErrTLS, ep, perr)
		}
	}
	return nil
}

// probeTLS handshakes with a TLS endpoint the way etcd's client does and
// reads briefly, so that a client certificate the server refuses (which
// TLS 1.3 reports only after the handshake) shows. It returns nil for a
// plain-text endpoint or a server that accepted us.
func probeTLS(ep string, cfg *tls.Config) error {
	host := ep
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		if u.Scheme == "http" || u.Scheme == "unix" {
			return nil
		}
		host = u.Host
	}
	if cfg == nil {
		if !strings.HasPrefix(ep, "https://") {
			return nil
		}
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	if h, _, err := net.SplitHostPort(host); err == nil && cfg.ServerName == "" {
		cfg.ServerName = h
	}
	d := &net.Dialer{Timeout: tlsProbeTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", host, cfg)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil // unreachable: not a TLS problem
		}
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) {
			return fmt.Errorf("etcd's server certificate is not trusted (Etcd.CAFile or Etcd.TLS.RootCAs): %w", err)
		}
		return fmt.Errorf("TLS handshake: %w", err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(tlsProbeTimeout))
	if _, err = conn.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return fmt.Errorf("etcd refused this node's client certificate (none given, or not signed by a CA etcd trusts): %w", err)
	}
	return nil
}

// checkWritable checks, without writing, that this node may write under
// the cluster's prefix: etcd checks the permissions of both branches of a
// transaction, and the put below is in a branch that never runs (no key
// has a negative create revision). A read-only user thus fails Start
// before anything is registered.
func (r *run) checkWritable(ctx context.Context) error {
	key := r.ck.keys.config()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := r.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "<", 0)).
		Then(clientv3.OpPut(key, "")).Commit()
	if err != nil {
		if aerr := r.ck.etcdAccessError(r.cli.Endpoints(), err); aerr != nil {
			return aerr
		}
		return fmt.Errorf("clusterkit: etcd %v: check write permission: %w", r.cli.Endpoints(), err)
	}
	return nil
}
