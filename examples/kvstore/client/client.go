// Package client talks to a kvstore cluster over HTTP. A plain client
// needs nothing but the addresses of some store nodes: each request goes to
// one of them, and that node forwards it to the key's primary (the
// server-side mode). A Routed client also follows the partition map with a
// clusterkit.Router (from etcd, without joining the cluster) and sends
// each request straight to the key's primary, saving the forward (sync
// and async modes).
//
// Requests refused before they changed anything (503, or no connection)
// are retried on other nodes until the context ends; a write whose outcome
// the cluster could not tell (504, a connection lost after sending) fails
// with ErrUnknown and is not retried, since it may have taken effect.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Errors, tested with errors.Is.
var (
	// ErrNotApplied: every attempt was refused before anything changed.
	ErrNotApplied = errors.New("client: not applied")
	// ErrUnknown: the write may or may not have taken effect.
	ErrUnknown = errors.New("client: outcome unknown")
)

// DefaultAttemptTimeout bounds one attempt when the context allows more.
const DefaultAttemptTimeout = 2 * time.Second

// Client sends requests to a kvstore cluster. It is safe for concurrent
// use; the zero value is not usable (use New).
type Client struct {
	nodes   []string
	http    *http.Client
	attempt time.Duration
	route   *route // nil unless Routed
	next    atomic.Uint64
}

// Option configures a Client.
type Option func(*Client)

// Routed makes the client send each request to the key's primary in rt's
// partition map. A refused attempt is sent to the primary again only once
// rt's map gives the partition a new epoch (a new serving set or primary);
// until then the retries go to the nodes in turn, which forward. The
// caller owns rt: Close it after the client's last request.
func Routed(rt *clusterkit.Router) Option { return func(c *Client) { c.route = &route{rt: rt} } }

// WithHTTPClient sets the HTTP client (default: one with kept-alive
// connections, up to 64 per node).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithAttemptTimeout bounds each attempt (default DefaultAttemptTimeout).
func WithAttemptTimeout(d time.Duration) Option { return func(c *Client) { c.attempt = d } }

// New returns a client of the store nodes at nodes (host:port each).
func New(nodes []string, opts ...Option) (*Client, error) {
	if len(nodes) == 0 {
		return nil, errors.New("client: no node addresses")
	}
	c := &Client{nodes: append([]string(nil), nodes...), attempt: DefaultAttemptTimeout}
	for _, o := range opts {
		o(c)
	}
	if c.route != nil && c.route.rt == nil {
		return nil, errors.New("client: Routed: the Router is nil")
	}
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
		}}
	}
	return c, nil
}

// Get returns key's value; found is false when the key has none.
func (c *Client) Get(ctx context.Context, key string) (value string, found bool, err error) {
	status, body, err := c.do(ctx, http.MethodGet, key, "")
	if err != nil {
		return "", false, err
	}
	if status == http.StatusNotFound {
		return "", false, nil
	}
	return body, true, nil
}

// Put sets key to value.
func (c *Client) Put(ctx context.Context, key, value string) error {
	_, _, err := c.do(ctx, http.MethodPut, key, value)
	return err
}

// Delete removes key's value (deleting a missing key succeeds).
func (c *Client) Delete(ctx context.Context, key string) error {
	_, _, err := c.do(ctx, http.MethodDelete, key, "")
	return err
}

// Close closes idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// do runs one request, retrying refusals on other nodes.
func (c *Client) do(ctx context.Context, method, key, value string) (int, string, error) {
	delay := 10 * time.Millisecond
	var lastErr error
	var tried uint64 // 1 + the epoch of the primary last tried; 0: none
	for attempt := 0; ; attempt++ {
		node := c.pick(key, attempt, &tried)
		status, body, err := c.once(ctx, node, method, key, value)
		switch {
		case err == nil && (status < 300 || (method == http.MethodGet && status == http.StatusNotFound)):
			return status, body, nil
		case err == nil && status == http.StatusServiceUnavailable,
			err != nil && isDialError(err),
			err != nil && method == http.MethodGet && ctx.Err() == nil:
			// Nothing changed (or it was a read): try again.
			lastErr = fmt.Errorf("%s %s via %s: %s", method, key, node, describe(status, body, err))
		case err == nil && status >= 400 && status < 500:
			return status, body, fmt.Errorf("client: %s %s via %s: %d %s", method, key, node, status, strings.TrimSpace(body))
		default:
			return status, body, fmt.Errorf("%w: %s %s via %s: %s", ErrUnknown, method, key, node, describe(status, body, err))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, "", fmt.Errorf("%w: %v (%v)", ErrNotApplied, lastErr, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func describe(status int, body string, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d %s", status, strings.TrimSpace(body))
}

// pick chooses the node for an attempt: when routed, the primary if the
// request has not tried the partition's current epoch yet (*tried is 1 +
// the epoch last tried); else the nodes in turn from a random start.
func (c *Client) pick(key string, attempt int, tried *uint64) string {
	if c.route != nil {
		if n, epoch := c.route.primary(key); n != "" && epoch+1 != *tried {
			*tried = epoch + 1
			return n
		}
	}
	if attempt == 0 {
		return c.nodes[rand.IntN(len(c.nodes))]
	}
	return c.nodes[c.next.Add(1)%uint64(len(c.nodes))]
}

// once sends one attempt to node.
func (c *Client) once(ctx context.Context, node, method, key, value string) (int, string, error) {
	actx, cancel := context.WithTimeout(ctx, c.attempt)
	defer cancel()
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader(value)
	}
	req, err := http.NewRequestWithContext(actx, method, "http://"+node+"/kv/"+url.PathEscape(key), body)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(b), nil
}

// isDialError reports whether err happened before the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
