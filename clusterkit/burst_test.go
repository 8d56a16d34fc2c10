package clusterkit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// TestBurstOfStartsAndStopsIsBatched starts 5 nodes at once next to 3,
// halts 3 of the 8 at once (crashes, fewer than half: no maintenance
// mode), then stops 2 of the rest gracefully at once (a deploy): each
// burst the leader sees together is planned together, so it costs a few
// map versions and rebalances (as the first node counts them), not a round
// per node.
//
// Crashed nodes are seen when etcd revokes their leases, and etcd revokes
// expired leases on a 500 ms tick: leases whose last renewals were up to a
// keep-alive interval apart can expire on two ticks. Each tick is a burst
// of its own (failover waits for nobody), so the halts' bound is per tick
// seen.
func TestBurstOfStartsAndStopsIsBatched(t *testing.T) {
	srv := etcdtest.Start(t)
	leaves := &leaveTimes{}
	watch := clustertest.Start(t, externalOptions(t, srv, "node-1"), func(ck *clusterkit.ClusterKit) {
		ck.OnNodeLeave(leaves.add)
	})
	nodes := []*clusterkit.ClusterKit{watch}
	for i := 2; i <= 3; i++ {
		nodes = append(nodes, clustertest.Start(t, externalOptions(t, srv, fmt.Sprintf("node-%d", i)), nil))
	}
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "3 nodes never agreed")

	opts := make([]clusterkit.Options, 5)
	for i := range opts {
		opts[i] = externalOptions(t, srv, fmt.Sprintf("node-%d", 4+i))
	}
	var started []*clusterkit.ClusterKit
	join := burst(t, watch, func() { started = startAll(t, opts) }, func() []*clusterkit.ClusterKit {
		return append(nodes, started...)
	})
	checkBurst(t, "5 starts", join, 1)

	halts := burst(t, watch, func() { all(started[:3], (*clusterkit.ClusterKit).Halt) }, func() []*clusterkit.ClusterKit {
		return append(nodes, started[3:]...)
	})
	checkBurst(t, "3 halts", halts, leaves.ticks())

	stops := burst(t, watch, func() {
		all(started[3:], func(ck *clusterkit.ClusterKit) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := ck.Stop(ctx); err != nil {
				t.Errorf("Stop(%s): %v", ck.GetMyNodeID(), err)
			}
		})
	}, func() []*clusterkit.ClusterKit { return nodes })
	checkBurst(t, "2 graceful stops", stops, 1)
}

// burst runs act and waits until the nodes after() returns agree; it
// returns what watch counted meanwhile.
func burst(t *testing.T, watch *clusterkit.ClusterKit, act func(), after func() []*clusterkit.ClusterKit) counts {
	t.Helper()
	before := burstCounts(watch)
	act()
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(after()...) }, "the nodes never agreed after a burst")
	return burstCounts(watch).minus(before)
}

// checkBurst fails t unless a burst seen in `seen` parts cost at most one
// plan and two rounds of completed handoffs per part, plus one round for a
// straggler, within at most two rebalances (a late part may extend the
// running one or start the next).
func checkBurst(t *testing.T, name string, c counts, seen int) {
	t.Helper()
	t.Logf("%s at once, seen in %d part(s): %d map versions, %d rebalances", name, seen, c.versions, c.rebalances)
	if want := int64(3*seen + 1); c.rebalances > 2 || c.versions > want {
		t.Errorf("%s at once: %d rebalances and %d map versions, want at most 2 and %d", name, c.rebalances, c.versions, want)
	}
}

// all runs fn on every node concurrently and waits.
func all(nodes []*clusterkit.ClusterKit, fn func(*clusterkit.ClusterKit)) {
	var wg sync.WaitGroup
	for _, ck := range nodes {
		wg.Go(func() { fn(ck) })
	}
	wg.Wait()
}

// leaveTimes records when a node saw others leave.
type leaveTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func (l *leaveTimes) add(*clusterkit.NodeLeaveEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.times = append(l.times, time.Now())
}

// ticks returns in how many groups, more than 250 ms apart (half etcd's
// lease-revoke tick), the leaves so far were seen.
func (l *leaveTimes) ticks() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i, at := range l.times {
		if i == 0 || at.Sub(l.times[i-1]) > 250*time.Millisecond {
			n++
		}
	}
	return n
}

// counts is what one node saw of the cluster's rebalancing.
type counts struct{ versions, rebalances int64 }

func burstCounts(ck *clusterkit.ClusterKit) counts {
	m := ck.GetMetrics()
	return counts{versions: m.AssignmentVersion, rebalances: m.RebalancesStarted}
}

func (c counts) minus(d counts) counts {
	return counts{versions: c.versions - d.versions, rebalances: c.rebalances - d.rebalances}
}

// startAll starts one node per options concurrently; Stop is registered on
// t.Cleanup.
func startAll(t *testing.T, opts []clusterkit.Options) []*clusterkit.ClusterKit {
	t.Helper()
	out := make([]*clusterkit.ClusterKit, len(opts))
	errs := make([]error, len(opts))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i, o := range opts {
		ck, err := clusterkit.New(o)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ck
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ck.Stop(ctx)
		})
		wg.Go(func() { errs[i] = ck.Start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}
