package clusterkit

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// Certificate renewal. A node renews its certificate once less than a
// third of its validity is left (about four months of pki.CertValidity's
// year): it makes a new key and a CSR for the same name and hosts, has it
// signed — by itself when it keeps the CA key (etcd members), otherwise
// by a member through POST /cluster/certificate over mutual TLS,
// authenticated by its current certificate — rewrites DataDir/tls
// (node.key, node.crt, each replaced whole) and hands the new certificate
// to its certHolder, so the next handshake uses it without a restart.
// Embedded etcd reads its certificate files at every handshake and picks
// the new files up by itself. An expired certificate cannot renew: the
// node joins again with the cluster token.
const (
	// certCheckInterval is how often the renewal loop looks at the
	// certificate (and retries a failed renewal).
	certCheckInterval = time.Hour
	// maxRenewBody bounds a renewal request and its answer.
	maxRenewBody = 16 << 10
	// renewTimeout bounds one signing request to a member.
	renewTimeout = 10 * time.Second
)

// renewRequest is the body of POST /cluster/certificate.
type renewRequest struct {
	CSR string `json:"csr"` // PEM CERTIFICATE REQUEST
}

// renewResponse is its answer.
type renewResponse struct {
	Certificate string `json:"certificate"` // PEM, signed by the cluster CA
}

// certRenewer renews one node's certificate. Its methods are called from
// one goroutine (loop) or a test; the holder is safe for concurrent use.
type certRenewer struct {
	dir    pki.Dir
	holder *certHolder
	// peers returns the HTTP addresses (host:port) of the members to ask
	// for a signature, tried in order.
	peers func() []string
	log   *zap.Logger
	now   func() time.Time
}

// due reports whether the held certificate has less than a third of its
// validity left at now, and how long it has left.
func (c *certRenewer) due(now time.Time) (bool, time.Duration) {
	leaf := c.holder.Current().Leaf
	left := leaf.NotAfter.Sub(now)
	return left < leaf.NotAfter.Sub(leaf.NotBefore)/3, left
}

// loop checks the certificate every interval, and whenever kick receives,
// until ctx ends, renewing it when due (at once on a kick); a failed
// renewal is logged and retried at the next check.
func (c *certRenewer) loop(ctx context.Context, interval time.Duration, kick <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	force := false
	for {
		if due, left := c.due(c.now()); due || force {
			if err := c.renew(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("certificate renewal failed; retrying later", zap.Duration("left", left), zapErr(err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			force = false
		case <-kick:
			force = true
		}
	}
}

// renew gets a new certificate for the held one's name and hosts, stores
// it in dir and replaces the held one.
func (c *certRenewer) renew(ctx context.Context) error {
	cur := c.holder.Current().Leaf
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, cur.Subject.CommonName, hostsOf(cur))
	if err != nil {
		return err
	}
	var certPEM []byte
	if c.dir.HasCA() {
		ca, err := c.dir.LoadCA()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTLS, err)
		}
		certPEM, err = ca.SignCSR(csr, pki.CertValidity, c.now())
		if err != nil {
			return err
		}
	} else if certPEM, err = c.requestSignature(ctx, csr); err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(c.dir.Path(pki.CAFile))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTLS, err)
	}
	if err := c.dir.WriteNode(caPEM, certPEM, keyPEM); err != nil {
		return fmt.Errorf("%w: store renewed certificate: %v", ErrTLS, err)
	}
	cert, _, err := c.dir.LoadNode()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTLS, err)
	}
	c.holder.Replace(cert)
	c.log.Info("certificate renewed", zap.Time("not_after", c.holder.Current().Leaf.NotAfter))
	return nil
}

// requestSignature asks the peers in turn to sign csr, over mutual TLS
// with the held certificate; the answer must verify against the CA pool.
func (c *certRenewer) requestSignature(ctx context.Context, csr []byte) ([]byte, error) {
	cfg := c.holder.ClientConfig()
	// The name the HTTP port answers with the cluster certificate, also
	// when Options.HTTPTLS gives it another one.
	cfg.ServerName = joinServerName
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: renewTimeout}
	body, _ := json.Marshal(renewRequest{CSR: string(csr)})
	var errs []error
	for _, addr := range c.peers() {
		certPEM, err := c.askPeer(ctx, client, addr, body)
		if err == nil {
			return certPEM, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: renew certificate: no member to ask", ErrTLS)
	}
	return nil, fmt.Errorf("%w: renew certificate: %w", ErrTLS, errors.Join(errs...))
}

func (c *certRenewer) askPeer(ctx context.Context, client *http.Client, addr string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/cluster/certificate", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRenewBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var out renewResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("malformed answer: %w", err)
	}
	leaf, err := parseCertPEM([]byte(out.Certificate))
	if err != nil {
		return nil, err
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.holder.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("signed certificate does not verify against the cluster CA: %w", err)
	}
	return []byte(out.Certificate), nil
}

// hostsOf lists a certificate's DNS names and IP addresses.
func hostsOf(c *x509.Certificate) []string {
	hosts := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return hosts
}

// certExpiryGauge is clusterkit_certificate_expiry_seconds: the seconds
// left until the held certificate expires (negative once expired).
func certExpiryGauge(h *certHolder) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "clusterkit", Name: "certificate_expiry_seconds",
		Help: "Seconds until this node's certificate expires; renewed when a third of its validity is left."},
		func() float64 { return time.Until(h.Current().Leaf.NotAfter).Seconds() })
}

// startCertRenewal publishes the expiry metric of h and renews h's
// certificate in the background until the run ends, asking the other
// members (their advertised addresses, which serve TLS) to sign; a send on
// r.certKick renews at once. Call it once per run, after h is loaded and
// the node is registered; the goroutine is the run's (r.wg).
func (r *run) startCertRenewal(h *certHolder) error {
	ck := r.ck
	g := certExpiryGauge(h)
	if err := ck.metrics.reg.Register(g); err != nil {
		return fmt.Errorf("clusterkit: register certificate metric: %w", err)
	}
	c := &certRenewer{dir: tlsDir(&ck.opts), holder: h, log: ck.log, now: time.Now, peers: func() []string {
		var out []string
		for _, n := range ck.GetCluster().Nodes {
			if n.ID != ck.opts.NodeID {
				out = append(out, n.Addr)
			}
		}
		return out
	}}
	r.wg.Go(func() {
		defer ck.metrics.reg.Unregister(g)
		c.loop(r.ctx, certCheckInterval, r.certKick)
	})
	return nil
}
