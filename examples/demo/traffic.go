package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/client"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
)

// traffic writes and reads keys through random nodes while the cluster
// changes, and remembers, per key, the last acknowledged write and any
// later writes whose outcome is unknown.
type traffic struct {
	cluster *localcluster.Cluster
	keys    int

	mu    sync.Mutex
	last  map[string]int   // key → sequence number of its last acknowledged write
	maybe map[string][]int // key → writes after it whose outcome is unknown

	acked, unknown, refused, reads, staleReads atomic.Int64
}

// writes counts the writes that ended, however they ended.
func (t *traffic) writes() int64 { return t.acked.Load() + t.unknown.Load() + t.refused.Load() }

func newTraffic(c *localcluster.Cluster, keys int) *traffic {
	return &traffic{cluster: c, keys: keys, last: map[string]int{}, maybe: map[string][]int{}}
}

func keyName(i int) string   { return fmt.Sprintf("user:%04d", i) }
func valueOf(seq int) string { return "v" + strconv.Itoa(seq) }
func seqOf(v string) (int, bool) {
	n, err := strconv.Atoi(v[min(1, len(v)):])
	return n, err == nil && len(v) > 1
}

// client returns a client of the nodes running now (the set changes).
func (t *traffic) client() (*client.Client, error) {
	var addrs []string
	for _, n := range t.cluster.Running() {
		if !n.Frozen() {
			addrs = append(addrs, n.API)
		}
	}
	return client.New(addrs, client.WithAttemptTimeout(time.Second))
}

// run writes every key once, in order, then keeps writing random keys and
// reading others at about rate operations per second until ctx ends.
func (t *traffic) run(ctx context.Context, rate int) {
	seq := 0
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var c *client.Client
	refreshed := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c == nil || time.Since(refreshed) > 500*time.Millisecond {
			nc, err := t.client()
			if err != nil {
				continue
			}
			c, refreshed = nc, time.Now()
		}
		seq++
		if seq <= t.keys || rand.IntN(2) == 0 {
			i := seq - 1
			if seq > t.keys {
				i = rand.IntN(t.keys)
			}
			t.write(ctx, c, keyName(i), seq)
		} else {
			t.read(ctx, c, keyName(rand.IntN(min(seq, t.keys))))
		}
	}
}

func (t *traffic) write(ctx context.Context, c *client.Client, key string, seq int) {
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := c.Put(octx, key, valueOf(seq))
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil:
		t.acked.Add(1)
		t.last[key] = seq
		t.maybe[key] = nil
	case errors.Is(err, client.ErrNotApplied) && ctx.Err() == nil:
		t.refused.Add(1)
	default:
		t.unknown.Add(1)
		t.maybe[key] = append(t.maybe[key], seq)
	}
}

func (t *traffic) read(ctx context.Context, c *client.Client, key string) {
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	v, found, err := c.Get(octx, key)
	if err != nil {
		return
	}
	t.reads.Add(1)
	if !t.acceptable(key, v, found) {
		t.staleReads.Add(1)
	}
}

// acceptable reports whether a read of key may return (v, found): the
// last acknowledged write, or one whose outcome is unknown and came later.
// (A write acknowledged while the read ran is accepted too.)
func (t *traffic) acceptable(key, v string, found bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	last, acked := t.last[key]
	if !found {
		return !acked
	}
	seq, ok := seqOf(v)
	if !ok {
		return false
	}
	return seq >= last
}

// verify reads every key written through the running nodes (each key
// through a different one) and returns how many were checked and the keys
// whose last acknowledged write is not what they read.
func (t *traffic) verify(ctx context.Context) (checked int, lost []string, err error) {
	c, err := t.client()
	if err != nil {
		return 0, nil, err
	}
	t.mu.Lock()
	keys := make([]string, 0, len(t.last))
	for k := range t.last {
		keys = append(keys, k)
	}
	t.mu.Unlock()
	for _, k := range keys {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, found, err := c.Get(octx, k)
		cancel()
		if err != nil {
			return checked, lost, fmt.Errorf("read %s: %w", k, err)
		}
		checked++
		if !t.acceptable(k, v, found) {
			lost = append(lost, fmt.Sprintf("%s=%q (last acknowledged %s)", k, v, valueOf(t.last[k])))
		}
	}
	return checked, lost, nil
}
