package clusterkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// joinRequest and joinResponse are the join endpoint's JSON.
type joinRequest struct {
	NodeID  string `json:"node_id"`
	Cluster string `json:"cluster"`
}

type joinResponse struct {
	Cluster   string   `json:"cluster"`
	Endpoints []string `json:"endpoints"`
}

// joinClient keeps no idle connections: a join is one request per node
// start, and a kept connection would outlive a stopped node.
var joinClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// joinRefused wraps an answer that retrying cannot change.
type joinRefused struct{ err error }

func (e joinRefused) Error() string { return e.err.Error() }
func (e joinRefused) Unwrap() error { return e.err }

// requestJoin asks the node at JoinAddr for the etcd endpoints, retrying
// (ten attempts, with backoff) while it is unreachable or answers 5xx.
func requestJoin(ctx context.Context, o *Options) ([]string, error) {
	var lastErr error
	b := newBackoff(100*time.Millisecond, 2*time.Second)
	for range 10 {
		endpoints, err := askJoin(ctx, o)
		if err == nil {
			return endpoints, nil
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
	return nil, fmt.Errorf("%w: JoinAddr %q: %v", ErrJoinFailed, o.JoinAddr, lastErr)
}

// askJoin makes one join request. Errors that a retry cannot change are
// joinRefused and wrap ErrJoinFailed.
func askJoin(ctx context.Context, o *Options) ([]string, error) {
	body, _ := json.Marshal(joinRequest{NodeID: o.NodeID, Cluster: o.ClusterName})
	url := "http://" + o.JoinAddr + "/cluster/join"
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, joinRefused{fmt.Errorf("%w: JoinAddr %q: %v", ErrJoinFailed, o.JoinAddr, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	if o.ClusterToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.ClusterToken)
	}
	resp, err := joinClient.Do(req)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, joinRefused{fmt.Errorf("%w: %w: %s refused the cluster token", ErrJoinFailed, ErrUnauthorized, o.JoinAddr)}
	case resp.StatusCode >= 500:
		return nil, fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, bytes.TrimSpace(b))
	case resp.StatusCode != http.StatusOK:
		return nil, joinRefused{fmt.Errorf("%w: %s answered %d: %s", ErrJoinFailed, url, resp.StatusCode, bytes.TrimSpace(b))}
	}
	var jr joinResponse
	if err := json.Unmarshal(b, &jr); err != nil || len(jr.Endpoints) == 0 {
		return nil, joinRefused{fmt.Errorf("%w: %s answered without etcd endpoints", ErrJoinFailed, url)}
	}
	if jr.Cluster != o.ClusterName {
		return nil, joinRefused{fmt.Errorf("%w: %s serves cluster %q, this node is configured for %q", ErrJoinFailed, o.JoinAddr, jr.Cluster, o.ClusterName)}
	}
	return jr.Endpoints, nil
}
