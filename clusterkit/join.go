package clusterkit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// joinRequest and joinResponse are the join endpoint's JSON.
// In secure mode a first join sends a certificate request (CSR, PEM) and
// gets back the signed certificate, the CA certificate and the CA key;
// joins of a node that has its certificate already send none. A request
// with Client set (RequestClientCertificate) gets a client-only
// certificate and the CA certificate, never the CA key; NodeID is then
// the client's name.
type joinRequest struct {
	NodeID  string `json:"node_id"`
	Cluster string `json:"cluster"`
	CSR     string `json:"csr,omitempty"`
	Client  bool   `json:"client,omitempty"`
}

type joinResponse struct {
	Cluster   string   `json:"cluster"`
	Endpoints []string `json:"endpoints"`
	Cert      string   `json:"cert,omitempty"`
	CACert    string   `json:"ca_cert,omitempty"`
	CAKey     string   `json:"ca_key,omitempty"`
}

// joinRefused wraps an answer that retrying cannot change.
type joinRefused struct{ err error }

func (e joinRefused) Error() string { return e.err.Error() }
func (e joinRefused) Unwrap() error { return e.err }

// joinTarget is the node a join request goes to: its HTTP address and
// the option that named it (for errors), the cluster it must serve (""
// accepts any) and how often to try.
type joinTarget struct {
	addr, field string
	cluster     string
	attempts    int
}

// requestJoin asks the node at t.addr for the etcd endpoints (and, with
// a CSR, a certificate), over https with tlsCfg when it is not nil,
// sending secret as the bearer token. It retries (t.attempts, with
// backoff) while the node is unreachable or answers 5xx.
func requestJoin(ctx context.Context, t joinTarget, req *joinRequest, secret string, tlsCfg *tls.Config) (*joinResponse, error) {
	var lastErr error
	b := newBackoff(100*time.Millisecond, 2*time.Second)
	// No idle connections: a join is one request per node start, and a
	// kept connection would outlive a stopped node.
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsCfg}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	for range t.attempts {
		ans, err := askJoin(ctx, t, cl, req, secret, tlsCfg != nil)
		if err == nil {
			return ans, nil
		}
		if refused := (joinRefused{}); errors.As(err, &refused) {
			return nil, err
		}
		lastErr = err
		if !b.wait(ctx) {
			break
		}
	}
	if ctx.Err() != nil {
		lastErr = errors.Join(lastErr, ctx.Err())
	}
	return nil, fmt.Errorf("%w: %s %q: %v", ErrJoinFailed, t.field, t.addr, lastErr)
}

// askJoin makes one join request. Errors that a retry cannot change are
// joinRefused and wrap ErrJoinFailed: a refused token, a server whose
// certificate does not match the token's pin (the secret is not sent).
func askJoin(ctx context.Context, t joinTarget, cl *http.Client, jr *joinRequest, secret string, https bool) (*joinResponse, error) {
	body, _ := json.Marshal(jr)
	url := "http://" + t.addr + "/cluster/join"
	if https {
		url = "https://" + t.addr + "/cluster/join"
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, joinRefused{fmt.Errorf("%w: %s %q: %v", ErrJoinFailed, t.field, t.addr, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := cl.Do(req)
	if errors.Is(err, pki.ErrPinMismatch) {
		return nil, joinRefused{fmt.Errorf("%w: %w: %s: %w", ErrJoinFailed, ErrTLS, t.addr, err)}
	}
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, joinRefused{fmt.Errorf("%w: %w: %s refused the cluster token", ErrJoinFailed, ErrUnauthorized, t.addr)}
	case resp.StatusCode >= 500:
		return nil, fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, bytes.TrimSpace(b))
	case resp.StatusCode != http.StatusOK:
		return nil, joinRefused{fmt.Errorf("%w: %s answered %d: %s", ErrJoinFailed, url, resp.StatusCode, bytes.TrimSpace(b))}
	}
	var ans joinResponse
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Endpoints) == 0 {
		return nil, joinRefused{fmt.Errorf("%w: %s answered without etcd endpoints", ErrJoinFailed, url)}
	}
	if t.cluster != "" && ans.Cluster != t.cluster {
		return nil, joinRefused{fmt.Errorf("%w: %s serves cluster %q, not %q", ErrJoinFailed, t.addr, ans.Cluster, t.cluster)}
	}
	return &ans, nil
}
