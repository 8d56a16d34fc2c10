package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/client"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
)

// traffic writes and reads keys through random nodes while the cluster
// changes, and remembers, per key, the last acknowledged write. Values are
// "v<n>" for the n-th write, so a read shows which write it saw.
type traffic struct {
	cluster *localcluster.Cluster
	keys    int
	http    *http.Client // shared by the clients made as nodes come and go

	mu   sync.Mutex
	last map[string]int // key → sequence number of its last acknowledged write

	acked, unknown, refused, reads, staleReads atomic.Int64
}

// writes counts the writes that ended, however they ended.
func (t *traffic) writes() int64 { return t.acked.Load() + t.unknown.Load() + t.refused.Load() }

func newTraffic(c *localcluster.Cluster, keys int) *traffic {
	return &traffic{cluster: c, keys: keys, last: map[string]int{},
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
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
	return client.New(addrs, client.WithHTTPClient(t.http), client.WithAttemptTimeout(time.Second))
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
	case errors.Is(err, client.ErrNotApplied) && ctx.Err() == nil:
		t.refused.Add(1)
	default:
		t.unknown.Add(1)
	}
}

func (t *traffic) read(ctx context.Context, c *client.Client, key string) {
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	last, acked := t.lastAcked(key)
	v, found, err := c.Get(octx, key)
	if err != nil {
		return
	}
	t.reads.Add(1)
	if !acceptable(last, acked, v, found) {
		t.staleReads.Add(1)
	}
}

// lastAcked returns the sequence number of key's last acknowledged write.
func (t *traffic) lastAcked(key string) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	last, ok := t.last[key]
	return last, ok
}

// acceptable reports whether a read that began after write number last
// was acknowledged (if acked) may return (v, found): that write or a later
// one, acknowledged, unknown, or in flight.
func acceptable(last int, acked bool, v string, found bool) bool {
	if !found {
		return !acked
	}
	seq, ok := seqOf(v)
	return ok && seq >= last
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
		if last, acked := t.lastAcked(k); !acceptable(last, acked, v, found) {
			lost = append(lost, fmt.Sprintf("%s=%q (last acknowledged %s)", k, v, valueOf(t.last[k])))
		}
	}
	return checked, lost, nil
}
