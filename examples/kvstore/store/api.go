package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Headers of the client API.
const (
	// HeaderForwardedBy marks a request one node forwarded to the primary;
	// a node that is not the primary either refuses it instead of
	// forwarding it again.
	HeaderForwardedBy = "X-Kv-Forwarded-By"
	// HeaderNode names the node that served the request.
	HeaderNode = "X-Kv-Node"
	// HeaderVersion is the version of the entry read or written.
	HeaderVersion = "X-Kv-Version"
)

// maxValueBytes bounds a value.
const maxValueBytes = 1 << 20

func (s *Store) handleGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	p, ok := s.route(w, r, key, nil)
	if !ok {
		return
	}
	e, err := s.read(r.Context(), p, key)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set(HeaderNode, s.me)
	w.Header().Set(HeaderVersion, e.Version.String())
	if e.Deleted || e.Version == (Version{}) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	io.WriteString(w, e.Value)
}

func (s *Store) handlePut(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxValueBytes+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxValueBytes {
		http.Error(w, "value larger than 1 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	s.handleWrite(w, r, Entry{Value: string(body)}, body)
}

func (s *Store) handleDelete(w http.ResponseWriter, r *http.Request) {
	s.handleWrite(w, r, Entry{Deleted: true}, nil)
}

func (s *Store) handleWrite(w http.ResponseWriter, r *http.Request, e Entry, body []byte) {
	key := r.PathValue("key")
	if key == "" {
		http.Error(w, "empty key", http.StatusBadRequest)
		return
	}
	p, ok := s.route(w, r, key, body)
	if !ok {
		return
	}
	v, err := s.write(r.Context(), p, key, e)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set(HeaderNode, s.me)
	w.Header().Set(HeaderVersion, v.String())
	w.WriteHeader(http.StatusNoContent)
}

// route returns key's partition when this node is its primary. Otherwise
// it forwards the request to the primary (or refuses it) and returns
// false.
func (s *Store) route(w http.ResponseWriter, r *http.Request, key string, body []byte) (*clusterkit.Partition, bool) {
	if s.draining.Load() {
		writeError(w, notApplied("%s is shutting down", s.me))
		return nil, false
	}
	p, err := s.ck.GetPartition(key)
	if err != nil {
		writeError(w, notApplied("no partition map yet: %v", err))
		return nil, false
	}
	if p.PrimaryNode == s.me {
		return p, true
	}
	s.forward(w, r, p, body)
	return nil, false
}

// forward sends a client request on to p's primary and copies its answer
// back. A request that was forwarded already is refused instead (503):
// the two nodes' maps disagree for a moment, and the client retries.
func (s *Store) forward(w http.ResponseWriter, r *http.Request, p *clusterkit.Partition, body []byte) {
	if by := r.Header.Get(HeaderForwardedBy); by != "" {
		writeError(w, notApplied("%s forwarded %s to %s, whose map names %s as primary", by, p.ID, s.me, p.PrimaryNode))
		return
	}
	addr := s.addrOf(p.PrimaryNode)
	if addr == "" {
		writeError(w, notApplied("%s has no primary with a store address (%q)", p.ID, p.PrimaryNode))
		return
	}
	s.forwarded.Add(1)
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.EscapedPath(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set(HeaderForwardedBy, s.me)
	resp, err := s.peers.http.Do(req)
	if err != nil {
		if isDialError(err) {
			writeError(w, notApplied("forward to %s (%s): %v", p.PrimaryNode, addr, err))
		} else {
			http.Error(w, "forward to "+p.PrimaryNode+": "+err.Error(), http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()
	w.Header().Set(HeaderForwardedBy, s.me) // a routing client then refreshes its map
	for _, h := range []string{HeaderNode, HeaderVersion, "Retry-After", "Content-Type"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// writeError answers err with 503 (nothing applied: retry), 504 (outcome
// unknown) or 500.
func writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errNotApplied):
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case errors.Is(err, errOutcomeUnknown):
		http.Error(w, err.Error(), http.StatusGatewayTimeout)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		http.Error(w, err.Error(), http.StatusGatewayTimeout)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// Stats is the body of GET /stats: this node's share of the cluster.
type Stats struct {
	Node string `json:"node"`
	Mode Mode   `json:"mode"`
	// Primaries and Replicas count the partitions this node serves in its
	// current map; Keys the keys with a value in them.
	Primaries int `json:"primaries"`
	Replicas  int `json:"replicas"`
	Keys      int `json:"keys"`
	// Forwarded counts client requests sent on to a primary; Activations
	// the take-overs this node completed as a new primary.
	Forwarded   int64 `json:"forwarded"`
	Activations int64 `json:"activations"`
}

// Stats returns this node's Stats.
func (s *Store) Stats() Stats {
	m := s.ck.GetMetrics()
	return Stats{Node: s.me, Mode: s.mode, Primaries: m.PrimaryPartitions, Replicas: m.ReplicaPartitions,
		Keys: s.Keys(), Forwarded: s.forwarded.Load(), Activations: s.activations.Load()}
}

func (s *Store) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
