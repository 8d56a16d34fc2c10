package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// percentile returns the p-th percentile (0–100) of ds in milliseconds.
func percentile(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i]) / float64(time.Millisecond)
}

// BenchmarkFormation3Embedded forms a 3-node cluster on embedded etcd
// (bootstrap + two joins) from nothing to one agreed map, per iteration;
// the clean-up (Stop of all three) is not timed.
func BenchmarkFormation3Embedded(b *testing.B) { benchFormation3(b, nil) }

// benchFormation3 forms a 3-node embedded cluster with opts per b.Loop
// iteration and reports p50-ms and max-ms; the Stops are not timed.
func benchFormation3(b *testing.B, opts func(*clusterkit.Options)) {
	var took []time.Duration
	for b.Loop() {
		tb := &cleanupTB{TB: b}
		start := time.Now()
		clustertest.Form(tb, 3, opts, nil)
		took = append(took, time.Since(start))
		b.StopTimer()
		tb.runCleanups()
		b.StartTimer()
	}
	b.ReportMetric(percentile(took, 50), "p50-ms")
	b.ReportMetric(percentile(took, 100), "max-ms")
}

// cleanupTB collects Cleanup functions so a benchmark can run them per
// iteration instead of at the end.
type cleanupTB struct {
	testing.TB
	cleanups []func()
}

func (c *cleanupTB) Cleanup(f func()) { c.cleanups = append(c.cleanups, f) }

func (c *cleanupTB) runCleanups() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
	c.cleanups = nil
}

// BenchmarkJoinToAgreement joins a node to a 5-node cluster (external
// etcd) and measures from the new node's Start returning (it is
// registered) until every node's lookups agree on a settled map that
// includes it; then the node leaves again.
func BenchmarkJoinToAgreement(b *testing.B) {
	srv := etcdtest.Start(b)
	var nodes []*clusterkit.ClusterKit
	for i := 1; i <= 5; i++ {
		o := clustertest.Options(b, fmt.Sprintf("node-%d", i))
		o.Etcd.Endpoints = srv.Endpoints()
		o.PartitionCount = 64
		nodes = append(nodes, clustertest.Start(b, o, nil))
	}
	clustertest.Eventually(b, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "never agreed")
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		o := clustertest.Options(b, fmt.Sprintf("joiner-%d", i))
		o.Etcd.Endpoints = srv.Endpoints()
		o.PartitionCount = 64
		_, agree := joinTimed(b, nodes, o)
		took = append(took, agree)
	}
	b.ReportMetric(percentile(took, 50), "p50-ms")
	b.ReportMetric(percentile(took, 99), "p99-ms")
}

// joinTimed starts a node with o, waits until it and nodes agree on a
// settled map, and stops it again untimed (until nodes agree without it).
// It returns how long its Start took and how long from Start returning
// (registered) until all agreed.
func joinTimed(b *testing.B, nodes []*clusterkit.ClusterKit, o clusterkit.Options) (start, agree time.Duration) {
	ck, err := clusterkit.New(o)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	if err := ck.Start(ctx); err != nil {
		b.Fatal(err)
	}
	registered := time.Now()
	all := append(slices.Clone(nodes), ck)
	clustertest.Eventually(b, 30*time.Second, func() bool { return clustertest.Agreed(all...) }, "never agreed after a join")
	start, agree = registered.Sub(begin), time.Since(registered)
	b.StopTimer()
	defer b.StartTimer()
	ck.Stop(ctx)
	clustertest.Eventually(b, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "never agreed after a leave")
	return start, agree
}

// BenchmarkCrashToLeave halts (crashes) one node of four and measures
// until every survivor's OnNodeLeave fired (lease TTL 1 s).
func BenchmarkCrashToLeave(b *testing.B) {
	srv := etcdtest.Start(b)
	var (
		mu   sync.Mutex
		seen = map[string]int{} // crashed node → survivors that saw it leave
	)
	start := func(id string) *clusterkit.ClusterKit {
		o := clustertest.Options(b, id)
		o.Etcd.Endpoints = srv.Endpoints()
		o.LeaseTTL = time.Second // the embedded etcd's minimum with these ticks
		return clustertest.Start(b, o, func(ck *clusterkit.ClusterKit) {
			ck.OnNodeLeave(func(e *clusterkit.NodeLeaveEvent) {
				if e.Reason == clusterkit.LeaveLeaseExpired {
					mu.Lock()
					seen[e.Node.ID]++
					mu.Unlock()
				}
			})
		})
	}
	survivors := []*clusterkit.ClusterKit{start("node-1"), start("node-2"), start("node-3")}
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		id := fmt.Sprintf("victim-%d", i)
		victim := start(id)
		all := append(slices.Clone(survivors), victim)
		clustertest.Eventually(b, 30*time.Second, func() bool { return clustertest.Agreed(all...) }, "never agreed")
		b.StartTimer()
		crashed := time.Now()
		victim.Halt()
		clustertest.Eventually(b, 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return seen[id] == len(survivors)
		}, "survivors never saw %s leave", id)
		took = append(took, time.Since(crashed))
	}
	b.ReportMetric(percentile(took, 50), "p50-ms")
	b.ReportMetric(percentile(took, 100), "max-ms")
}
