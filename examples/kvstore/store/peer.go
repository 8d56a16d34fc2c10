package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Paths of the calls nodes make to each other. Every call that could
// change a node's data or vouch for a primary carries the partition's
// epoch; a node answers 409 with the newest epoch it knows when the
// message's epoch is older (see partition.admitLocked).
const (
	pathReplicate = "/internal/replicate" // one write, from the primary
	pathCheck     = "/internal/check"     // a read's confirmation that the epoch is current
	pathFence     = "/internal/fence"     // a new primary: remember my epoch, send me all you hold
	pathSync      = "/internal/sync"      // a new primary: hold what I hold
	pathStream    = "/internal/partition/{p}"
)

type replicateRequest struct {
	Partition int    `json:"p"`
	Epoch     uint64 `json:"epoch"`
	Key       string `json:"key"`
	Entry     Entry  `json:"entry"`
}

type checkRequest struct {
	Partition int    `json:"p"`
	Epoch     uint64 `json:"epoch"`
	Key       string `json:"key"`
}

type fenceRequest struct {
	Partition int    `json:"p"`
	Epoch     uint64 `json:"epoch"`
}

type fenceResponse struct {
	Entries map[string]Entry `json:"entries"`
}

type syncRequest struct {
	Partition int              `json:"p"`
	Epoch     uint64           `json:"epoch"`
	Entries   map[string]Entry `json:"entries"`
}

// refusal is the body of a 409: the newest epoch the node knows.
type refusal struct {
	Newest uint64 `json:"newest"`
}

// peerClient makes the calls to other nodes, on kept-alive connections.
type peerClient struct {
	http *http.Client
}

func newPeerClient() *peerClient {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: peerTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &peerClient{http: &http.Client{Transport: t}}
}

func (c *peerClient) close() { c.http.CloseIdleConnections() }

// peerResult is the outcome of one call: err for a failure, newer > 0
// for a refusal naming a newer epoch.
type peerResult struct {
	err   error
	newer uint64
}

// call POSTs msg as JSON to path on addr and decodes a 200 answer into
// out (if not nil).
func (c *peerClient) call(ctx context.Context, addr, path string, msg, out any) peerResult {
	if addr == "" {
		return peerResult{err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no store address")}}
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return peerResult{err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		return peerResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return peerResult{err: err}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return peerResult{err: fmt.Errorf("%s%s: %w", addr, path, err)}
			}
		}
		io.Copy(io.Discard, resp.Body)
		return peerResult{}
	case http.StatusConflict:
		var r refusal
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Newest == 0 {
			return peerResult{err: fmt.Errorf("%s%s: unreadable refusal: %v", addr, path, err)}
		}
		return peerResult{newer: r.Newest}
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return peerResult{err: fmt.Errorf("%s%s: %s: %s", addr, path, resp.Status, bytes.TrimSpace(msg))}
	}
}

// isDialError reports whether err happened before a request could be
// sent (the connection was never made), so that nothing arrived.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
