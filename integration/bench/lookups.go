package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/embedetcd"
)

// lookupResult is one testing.Benchmark of GetPartition.
type lookupResult struct {
	ns     float64 // per lookup
	allocs int64
	// rebalances: maps this node received while the lookups ran.
	rebalances int64
}

// benchLookups measures GetPartition on a node of a 10-node cluster (64
// partitions, RF 3, the original's benchmark shape; the nodes are plain
// clients of one embedded etcd member in this process): on one goroutine,
// on every core (RunParallel), and on one goroutine while an eleventh node
// joins and leaves over and over (every join and leave is a rebalance).
func benchLookups(ctx context.Context, trials int) (single, parallel, churn []lookupResult, err error) {
	dir, err := os.MkdirTemp("", "bench-lookups-")
	if err != nil {
		return nil, nil, nil, err
	}
	defer os.RemoveAll(dir)
	m, err := embedetcd.Start(ctx, embedetcd.FastTestConfig("bench", dir))
	if err != nil {
		return nil, nil, nil, err
	}
	defer m.Stop()
	var nodes []*clusterkit.ClusterKit
	defer func() {
		for _, n := range nodes {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			n.Stop(sctx)
			cancel()
		}
	}()
	for i := range 10 {
		ck, err := startPlain(ctx, m.ClientURL(), dir, fmt.Sprintf("node-%d", i+1))
		if err != nil {
			return nil, nil, nil, err
		}
		nodes = append(nodes, ck)
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%08d", i)
	}
	ck := nodes[0]
	for range trials {
		single = append(single, lookupBench(ck, keys, false))
		parallel = append(parallel, lookupBench(ck, keys, true))
		r, err := lookupsDuringChurn(ctx, ck, m.ClientURL(), dir, keys)
		if err != nil {
			return nil, nil, nil, err
		}
		churn = append(churn, r)
	}
	return single, parallel, churn, nil
}

// startPlain starts a node in this process as a client of etcd at url,
// with its data directory under dir.
func startPlain(ctx context.Context, url, dir, id string) (*clusterkit.ClusterKit, error) {
	ck, err := clusterkit.New(clusterkit.Options{NodeID: id, HTTPAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, id),
		Etcd: clusterkit.EtcdConfig{Endpoints: []string{url}}, LeaseTTL: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := ck.Start(sctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	return ck, nil
}

func lookupBench(ck *clusterkit.ClusterKit, keys []string, parallel bool) lookupResult {
	r := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					ck.GetPartition(keys[i%len(keys)])
				}
			})
			return
		}
		for i := 0; b.Loop(); i++ {
			ck.GetPartition(keys[i%len(keys)])
		}
	})
	return lookupResult{ns: float64(r.T.Nanoseconds()) / float64(r.N), allocs: r.AllocsPerOp()}
}

// lookupsDuringChurn runs lookupBench while another node joins and stops
// in a loop, and counts the map versions ck saw meanwhile.
func lookupsDuringChurn(ctx context.Context, ck *clusterkit.ClusterKit, url, dir string, keys []string) (lookupResult, error) {
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var churnErr atomic.Value
	churnDone := make(chan struct{})
	wg.Go(func() {
		defer close(churnDone)
		for i := 0; cctx.Err() == nil; i++ {
			n, err := startPlain(cctx, url, dir, "churn")
			if err != nil {
				if cctx.Err() == nil {
					churnErr.Store(err)
				}
				return
			}
			sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
			n.Stop(sctx)
			c()
		}
	})
	// Let the first join begin.
	time.Sleep(200 * time.Millisecond)
	before := ck.GetCluster().AssignmentVersion
	var r lookupResult
	for r.rebalances == 0 && ctx.Err() == nil && !closed(churnDone) {
		r = lookupBench(ck, keys, false)
		r.rebalances = ck.GetCluster().AssignmentVersion - before
	}
	cancel()
	wg.Wait()
	if err, ok := churnErr.Load().(error); ok {
		return r, err
	}
	return r, nil
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
