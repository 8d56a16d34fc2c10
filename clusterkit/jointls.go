package clusterkit

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// requestJoin asks JoinAddr for the etcd endpoints. In secure mode it
// dials https with the token's CA pin (or the stored CA's), so that a
// server without the cluster's certificate never sees the secret; a node
// without a certificate sends a CSR for a new key and stores what the
// answer brings (r.tls). It runs in start, before r is published.
func (r *run) requestJoin(ctx context.Context) ([]string, error) {
	o := &r.ck.opts
	req := &joinRequest{NodeID: o.NodeID, Cluster: o.ClusterName}
	target := joinTarget{addr: o.JoinAddr, field: "JoinAddr", cluster: o.ClusterName, attempts: 10}
	secret := tokenSecret(o.ClusterToken)
	if !o.secure() {
		ans, err := requestJoin(ctx, target, req, secret, nil)
		if err != nil {
			return nil, err
		}
		return ans.Endpoints, nil
	}
	pin := tokenPin(o.ClusterToken)
	if r.tls != nil {
		pin, secret = r.tls.pin, r.tls.secret
	}
	if pin == "" {
		r.ck.log.Warn("ClusterToken is a plain secret: this node cannot authenticate the cluster it joins; use the ck1. token of JoinToken",
			zap.String("join_addr", o.JoinAddr))
	}
	tlsCfg := pki.PinnedClientConfig(pin)
	tlsCfg.ServerName = joinServerName
	var key *ecdsa.PrivateKey
	if r.tls != nil {
		tlsCfg.GetClientCertificate = r.tls.holder.GetClientCertificate
	} else {
		cfg, err := r.embedConfig()
		if err != nil {
			return nil, err
		}
		if key, req.CSR, err = newJoinKey(o.NodeID, certHosts(o, r.advertiseAddr(), cfg)); err != nil {
			return nil, err
		}
	}
	ans, err := requestJoin(ctx, target, req, secret, tlsCfg)
	if err != nil {
		return nil, err
	}
	if key != nil {
		if r.tls, err = storeJoinedTLS(o, key, ans); err != nil {
			return nil, err
		}
		r.ck.log.Info("joined with a certificate of the cluster CA", zap.String("ca_pin", r.tls.pin))
	}
	return ans.Endpoints, nil
}

// signJoin answers a join request's CSR: the certificate, the CA
// certificate and the CA key (every embedded node may take an etcd voter
// seat later, and any voter must be able to answer joins once the
// bootstrap node is gone). A client's request (req.Client) gets a
// client-only certificate and the CA certificate, not the CA key. It
// returns the status and message of a refusal.
func signJoin(run *run, req *joinRequest, ans *joinResponse) (int, string) {
	if req.CSR == "" {
		if req.Client {
			return http.StatusBadRequest, "a client certificate request needs a csr"
		}
		return 0, ""
	}
	t := run.tls
	switch {
	case t == nil:
		return http.StatusBadRequest, "this cluster runs without TLS (InsecurePlaintext): no certificate to issue"
	case t.ca == nil:
		return http.StatusServiceUnavailable, "this node cannot sign certificates; ask an etcd member"
	}
	sign := t.ca.SignCSR
	if req.Client {
		sign = t.ca.SignClientCSR
	}
	certPEM, err := sign([]byte(req.CSR), pki.CertValidity, time.Now())
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	ans.Cert, ans.CACert = string(certPEM), string(t.ca.CertPEM())
	if req.Client {
		return 0, ""
	}
	keyPEM, err := pki.EncodeKey(t.ca.Key)
	if err != nil {
		return http.StatusInternalServerError, "encode the CA key"
	}
	ans.CAKey = string(keyPEM)
	return 0, ""
}

// newJoinKey makes this node's key and its CSR for name and hosts.
func newJoinKey(name string, hosts []string) (*ecdsa.PrivateKey, string, error) {
	key, err := pki.NewKey()
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrTLS, err)
	}
	csr, err := pki.NewCSR(key, name, hosts)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return key, string(csr), nil
}
