package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// maxResponse bounds a response body: /cluster at 16,384 partitions × RF 3
// is a few MB.
const maxResponse = 64 << 20

// client talks to one node's HTTP API. It is safe for concurrent use.
type client struct {
	base  string // scheme://host:port[/prefix], no trailing slash
	token string
	http  *http.Client
}

// newClient checks the global flags and returns the client of their node.
func newClient(g *globals) (*client, error) {
	if err := checkCommon(g); err != nil {
		return nil, err
	}
	if g.node == "" {
		return nil, usageError("no node to ask: pass --node host:port (a node's HTTPAddr) or set %s; the read-only commands can read etcd instead (--etcd)", envNode)
	}
	scheme, tlsCfg, err := tlsFor(g)
	if err != nil {
		return nil, err
	}
	base := g.node
	if !strings.Contains(base, "://") {
		base = scheme + "://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, usageError("invalid --node %q: give host:port (a node's HTTPAddr) or a URL such as https://host:port/prefix", g.node)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &client{base: strings.TrimRight(u.String(), "/"), token: g.token, http: &http.Client{Timeout: g.timeout, Transport: tr}}, nil
}

// checkCommon checks the flags of both modes.
func checkCommon(g *globals) error {
	if g.output != "table" && g.output != "json" {
		return usageError("invalid --output %q: use table or json", g.output)
	}
	if g.timeout <= 0 {
		return usageError("invalid --timeout %v: give a positive duration such as 20s", g.timeout)
	}
	return nil
}

// apiError is an answer other than 2xx or 304 from the node.
type apiError struct {
	Status int
	// Message is the node's {"error": …}, or the status text.
	Message string
	// UnknownPath: a 404 for the path itself (not a ClusterKit endpoint
	// there), rather than for a node or partition it names.
	UnknownPath bool
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

// do sends a request and decodes a JSON answer into out (when not nil). A
// 304 answer returns notModified; any other non-2xx answer an error that
// says what to do. okStatus lists other statuses whose JSON body is an
// answer (GET /health/detailed answers 503 when critical).
func (c *client) do(ctx context.Context, method, path string, header http.Header, out any, okStatus ...int) (h http.Header, notModified bool, err error) {
	return c.doBody(ctx, method, path, header, nil, out, okStatus...)
}

// doBody is do with a request body (JSON when not nil).
func (c *client) doBody(ctx context.Context, method, path string, header http.Header, reqBody io.Reader, out any, okStatus ...int) (h http.Header, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reqBody)
	if err != nil {
		return nil, false, err
	}
	if reqBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("cannot reach the node at %s: %v; check that --node (or %s) is the HTTPAddr of a running ClusterKit node", c.base, unwrapURLError(err), envNode)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return resp.Header, true, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, false, fmt.Errorf("reading the answer of %s %s: %v", method, c.base+path, err)
	}
	ok := resp.StatusCode/100 == 2
	for _, s := range okStatus {
		ok = ok || resp.StatusCode == s
	}
	if !ok {
		return nil, false, c.explain(method, path, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, false, fmt.Errorf("the answer of %s %s is not ClusterKit's JSON (%v): is --node a ClusterKit node's HTTPAddr?", method, c.base+path, err)
		}
	}
	return resp.Header, false, nil
}

// explain turns an error answer into an error that says what to do.
func (c *client) explain(method, path string, status int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := http.StatusText(status)
	fromClusterKit := json.Unmarshal(body, &e) == nil && e.Error != ""
	if fromClusterKit {
		msg = e.Error
	}
	ae := &apiError{Status: status, Message: msg}
	var hint string
	switch status {
	case http.StatusBadRequest:
		return &exitError{code: exitUsage, err: fmt.Errorf("the node refused the request: %w", ae)}
	case http.StatusUnauthorized:
		hint = "pass the cluster's ClusterToken with --token or " + envToken
	case http.StatusForbidden:
		hint = "the nodes run without a ClusterToken, so admin calls are disabled; start them with Options.ClusterToken"
		if strings.Contains(msg, "https://") {
			hint = "pass the cluster's join token (ck1.…, a node's JoinToken) with --token, or --ca-file, or an https:// --node"
		}
	case http.StatusNotFound:
		if ae.UnknownPath = !fromClusterKit || strings.HasPrefix(msg, "no such endpoint"); ae.UnknownPath {
			hint = fmt.Sprintf("%s does not serve %s %s: is it a ClusterKit node, and does --node include the API's path prefix?", c.base, method, path)
		}
	case http.StatusServiceUnavailable:
		hint = "the node cannot answer now (starting, stopping or cut off from etcd); retry, or ask another node with --node"
	case http.StatusGatewayTimeout:
		hint = "the cluster did not finish in time (busy, or etcd unreachable); retry"
	}
	if hint == "" {
		return fmt.Errorf("%s %s: %w", method, path, ae)
	}
	return fmt.Errorf("%s %s: %w; %s", method, path, ae, hint)
}

// unwrapURLError drops url.Error's repetition of the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *client) get(ctx context.Context, path string, out any, okStatus ...int) error {
	_, _, err := c.do(ctx, http.MethodGet, path, nil, out, okStatus...)
	return err
}

// cluster fetches GET /cluster; with etag, a view that did not change
// since returns (nil, etag, nil).
func (c *client) cluster(ctx context.Context, etag string) (*clusterView, string, error) {
	var h http.Header
	if etag != "" {
		h = http.Header{"If-None-Match": {etag}}
	}
	var v clusterView
	hdr, notModified, err := c.do(ctx, http.MethodGet, "/cluster", h, &v)
	if err != nil {
		return nil, "", err
	}
	if notModified {
		return nil, etag, nil
	}
	return &v, hdr.Get("ETag"), nil
}

// fetchCluster checks the global flags and fetches the node's view of the
// cluster, for a command to show. In etcd mode it reads the cluster from
// etcd instead and returns no client.
func fetchCluster(cmd *cobra.Command, g *globals) (*client, *clusterView, error) {
	if g.etcd.endpoints != "" {
		r, err := openRouter(cmd.Context(), g)
		if err != nil {
			return nil, nil, err
		}
		defer r.Close()
		return nil, viewOf(r), nil
	}
	c, err := newClient(g)
	if err != nil {
		return nil, nil, err
	}
	v, _, err := c.cluster(cmd.Context(), "")
	if err != nil {
		return nil, nil, failed(err)
	}
	return c, v, nil
}

// health fetches GET /health/detailed, which answers 503 when critical.
func (c *client) health(ctx context.Context) (*healthView, error) {
	var h healthView
	if err := c.get(ctx, "/health/detailed", &h, http.StatusServiceUnavailable); err != nil {
		return nil, err
	}
	return &h, nil
}

// admin sends an admin POST with the token and returns the node's answer.
func (c *client) admin(ctx context.Context, path string) (map[string]string, error) {
	if err := c.needToken(); err != nil {
		return nil, err
	}
	var out map[string]string
	_, _, err := c.do(ctx, http.MethodPost, path, http.Header{"Authorization": {"Bearer " + c.token}}, &out)
	return out, err
}

// needToken is a usage error when no token was given.
func (c *client) needToken() error {
	if c.token == "" {
		return usageError("this command needs the cluster token: pass --token or set %s", envToken)
	}
	return nil
}
