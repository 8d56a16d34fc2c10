package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Store is a small replicated key-value store on top of ClusterKit: every
// key lives in the partition ClusterKit names; the partition's primary
// takes writes and copies them to its replicas (and to nodes still
// receiving the partition) before answering; a node that gains a partition
// copies it from a node that serves it before ClusterKit lets it serve.
type Store struct {
	ck     *clusterkit.ClusterKit
	log    *log.Logger
	client *http.Client

	mu   sync.RWMutex
	data map[int]map[string]string // partition → key → value
}

// NewStore makes a store for ck and registers its hooks; call it before
// ck.Start.
func NewStore(ck *clusterkit.ClusterKit, logger *log.Logger) *Store {
	s := &Store{ck: ck, log: logger, client: &http.Client{Timeout: 5 * time.Second}, data: map[int]map[string]string{}}
	ck.OnPartitionChange(s.onPartitionChange)
	ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) {
		if e.Node.ID == ck.GetMyNodeID() {
			// Back after being away: whatever we hold may be stale. The
			// partitions we get now arrive through OnPartitionChange.
			s.mu.Lock()
			s.data = map[int]map[string]string{}
			s.mu.Unlock()
		}
	})
	return s
}

// Handler serves the store's API: GET/PUT /kv/{key} for clients, and the
// internal calls nodes make to each other.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kv/{key}", s.get)
	mux.HandleFunc("PUT /kv/{key}", s.put)
	mux.HandleFunc("PUT /internal/replicate/{key}", s.replicate)
	mux.HandleFunc("GET /internal/partition/{p}", s.dump)
	return mux
}

// Keys counts the keys this node holds.
func (s *Store) Keys() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, m := range s.data {
		n += len(m)
	}
	return n
}

func (s *Store) get(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	p, err := s.ck.GetPartition(key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !s.ck.IsPrimary(p) && !s.ck.IsReplica(p) {
		s.forward(w, r, s.ck.GetPrimary(p), nil)
		return
	}
	s.mu.RLock()
	v, ok := s.data[p.Index][key]
	s.mu.RUnlock()
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	io.WriteString(w, v)
}

// readWrite reads a write's key, value and partition, answering the
// client itself when it fails.
func (s *Store) readWrite(w http.ResponseWriter, r *http.Request) (key string, body []byte, p *clusterkit.Partition, ok bool) {
	key = r.PathValue("key")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", nil, nil, false
	}
	if p, err = s.ck.GetPartition(key); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return "", nil, nil, false
	}
	return key, body, p, true
}

func (s *Store) put(w http.ResponseWriter, r *http.Request) {
	key, body, p, ok := s.readWrite(w, r)
	if !ok {
		return
	}
	if !s.ck.IsPrimary(p) {
		s.forward(w, r, s.ck.GetPrimary(p), body)
		return
	}
	s.set(p.Index, key, string(body))
	// Synchronous replication to the replicas and to incoming nodes (they
	// may have copied the partition already).
	targets := append([]clusterkit.Node(nil), s.ck.GetReplicas(p)...)
	for _, id := range p.IncomingNodes {
		for _, n := range s.ck.GetCluster().Nodes {
			if n.ID == id {
				targets = append(targets, n)
			}
		}
	}
	for _, n := range targets {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPut, "http://"+n.Services["kv"]+"/internal/replicate/"+key, bytes.NewReader(body))
		resp, err := s.client.Do(req)
		if err != nil {
			http.Error(w, fmt.Sprintf("replicate to %s: %v", n.ID, err), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Store) replicate(w http.ResponseWriter, r *http.Request) {
	key, body, p, ok := s.readWrite(w, r)
	if !ok {
		return
	}
	s.set(p.Index, key, string(body))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Store) set(p int, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data[p] == nil {
		s.data[p] = map[string]string{}
	}
	s.data[p][key] = value
}

func (s *Store) dump(w http.ResponseWriter, r *http.Request) {
	p, err := strconv.Atoi(r.PathValue("p"))
	if err != nil {
		http.Error(w, "bad partition", http.StatusBadRequest)
		return
	}
	s.mu.RLock()
	b, err := json.Marshal(s.data[p])
	s.mu.RUnlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// forward sends a client request on to node n (the primary).
func (s *Store) forward(w http.ResponseWriter, r *http.Request, n *clusterkit.Node, body []byte) {
	if n == nil || n.Services["kv"] == "" {
		http.Error(w, "no primary", http.StatusServiceUnavailable)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+n.Services["kv"]+r.URL.Path, bytes.NewReader(body))
	resp, err := s.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// onPartitionChange copies a partition this node gains from a node that
// serves it. Returning an error makes ClusterKit retry; until it returns
// nil the old replicas keep serving the partition.
func (s *Store) onPartitionChange(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
	if e.CopyToNode.ID != s.ck.GetMyNodeID() || e.Promoted {
		return nil
	}
	if e.NoSource || len(e.CopyFromNodes) == 0 {
		s.log.Printf("%s: %s starts empty (no node held it)", s.ck.GetMyNodeID(), e.PartitionID)
		return nil
	}
	var errs []error
	for _, src := range e.CopyFromNodes {
		if src.ID == s.ck.GetMyNodeID() {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/internal/partition/%d", src.Services["kv"], e.PartitionIndex), nil)
		resp, err := s.client.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var m map[string]string
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		if s.data[e.PartitionIndex] == nil {
			s.data[e.PartitionIndex] = map[string]string{}
		}
		for k, v := range m {
			s.data[e.PartitionIndex][k] = v
		}
		s.mu.Unlock()
		s.log.Printf("%s: copied %s (%d keys) from %s (%s)", s.ck.GetMyNodeID(), e.PartitionID, len(m), src.ID, e.ChangeReason)
		return nil
	}
	return fmt.Errorf("copy %s: %w", e.PartitionID, errors.Join(errs...))
}
