package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterkit-go/clusterkit/placement"
)

// refreshEvery bounds how often a Routed client re-reads the map.
const refreshEvery = 100 * time.Millisecond

// router maps keys to their primaries' store addresses from the partition
// map a node's ClusterKit API serves (GET /clusterkit/cluster).
type router struct {
	c     *Client
	table atomic.Pointer[table]
	stale atomic.Bool

	mu   sync.Mutex // one refresh at a time
	last time.Time
}

// table is one partition map: per partition, its primary's store address.
type table struct {
	primaries []string
}

// clusterView is the part of GET /clusterkit/cluster the router reads.
type clusterView struct {
	PartitionCount int `json:"partition_count"`
	Members        []struct {
		ID       string            `json:"id"`
		Services map[string]string `json:"services"`
	} `json:"members"`
	Partitions []struct {
		Index   int    `json:"index"`
		Primary string `json:"primary"`
	} `json:"partitions"`
}

// primary returns key's primary address, or "" when the map is unknown;
// it refreshes a stale map first (at most every refreshEvery).
func (r *router) primary(key string) string {
	if t := r.table.Load(); t == nil || r.stale.Load() {
		r.refresh()
	}
	t := r.table.Load()
	if t == nil || len(t.primaries) == 0 {
		return ""
	}
	return t.primaries[placement.PartitionOf(key, len(t.primaries))]
}

func (r *router) invalidate() { r.stale.Store(true) }

func (r *router) refresh() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.last) < refreshEvery {
		return
	}
	r.last = time.Now()
	for _, node := range r.c.nodes {
		if t, err := r.fetch(node); err == nil {
			r.table.Store(t)
			r.stale.Store(false)
			return
		}
	}
}

func (r *router) fetch(node string) (*table, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+node+"/clusterkit/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", node, resp.Status)
	}
	var v clusterView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, err
	}
	addr := map[string]string{}
	for _, m := range v.Members {
		addr[m.ID] = m.Services["kv"]
	}
	t := &table{primaries: make([]string, v.PartitionCount)}
	for _, p := range v.Partitions {
		if p.Index >= 0 && p.Index < len(t.primaries) {
			t.primaries[p.Index] = addr[p.Primary]
		}
	}
	return t, nil
}
