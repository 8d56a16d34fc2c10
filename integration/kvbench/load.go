package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
	"github.com/clusterkit-go/clusterkit/placement"
)

// generator sends the load: each client sends one request at a time, to
// the key's primary or to another node, on kept-alive connections.
type generator struct {
	c         config
	http      *http.Client
	primaries []string   // partition → the primary's store address
	others    [][]string // partition → the other nodes' store addresses
	keys      []string
	value     string
}

func newGenerator(ctx context.Context, cl *localcluster.Cluster, c config) (*generator, error) {
	nodes := cl.Running()
	v, err := nodes[0].ReadView(ctx)
	if err != nil {
		return nil, err
	}
	api := map[string]string{}
	for _, n := range nodes {
		api[n.ID] = n.API
	}
	g := &generator{c: c, primaries: make([]string, len(v.Partitions)), others: make([][]string, len(v.Partitions)),
		value: strings.Repeat("x", c.valueSize),
		http: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: c.clients,
			DisableCompression:  true,
		}}}
	for _, p := range v.Partitions {
		g.primaries[p.Index] = api[p.Primary]
		for _, n := range nodes {
			if n.ID != p.Primary {
				g.others[p.Index] = append(g.others[p.Index], n.API)
			}
		}
	}
	for i := range c.keys {
		g.keys = append(g.keys, fmt.Sprintf("key-%06d", i))
	}
	return g, nil
}

func (g *generator) close() { g.http.CloseIdleConnections() }

// target returns the node a request for key goes to.
func (g *generator) target(key string, forwarded bool) string {
	p := placement.PartitionOf(key, len(g.primaries))
	if forwarded {
		o := g.others[p]
		return o[rand.IntN(len(o))]
	}
	return g.primaries[p]
}

// send runs one request and reports whether it succeeded.
func (g *generator) send(ctx context.Context, key string, write, forwarded bool) error {
	method, body, want := http.MethodGet, io.Reader(nil), http.StatusOK
	if write {
		method, body, want = http.MethodPut, strings.NewReader(g.value), http.StatusNoContent
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+g.target(key, forwarded)+"/kv/"+key, body)
	if err != nil {
		return err
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s", method, key, resp.Status)
	}
	return nil
}

// load writes every key once.
func (g *generator) load(ctx context.Context) error {
	var next atomic.Int64
	errs := make(chan error, g.c.clients)
	var wg sync.WaitGroup
	for range g.c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(g.keys)); i = next.Add(1) - 1 {
				if err := g.send(ctx, g.keys[i], true, false); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// measure runs p's load for the warm-up, then for the measured duration.
func (g *generator) measure(ctx context.Context, p phase) result {
	runtime.GC()
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		mu        sync.Mutex
		lat       []time.Duration
		errors    int
		lastErr   error
		wg        sync.WaitGroup
	)
	for range g.c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var bad int
			var last error
			for !stop.Load() && ctx.Err() == nil {
				key := g.keys[rand.IntN(len(g.keys))]
				t := time.Now()
				err := g.send(ctx, key, p.write, p.forwarded)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					bad++
					last = err
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errors += bad
			if last != nil {
				lastErr = last
			}
			mu.Unlock()
		}()
	}
	sleepCtx(ctx, g.c.warmup)
	measuring.Store(true)
	began := time.Now()
	sleepCtx(ctx, g.c.duration)
	measuring.Store(false)
	elapsed := time.Since(began)
	stop.Store(true)
	wg.Wait()
	slices.Sort(lat)
	r := result{name: p.name, ops: len(lat), elapsed: elapsed, errors: errors, lastErr: lastErr}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
