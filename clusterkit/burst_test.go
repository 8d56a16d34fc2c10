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

// TestBurstOfStartsAndHaltsIsBatched starts 5 nodes at once next to 3,
// then halts 3 of the 8 at once (fewer than half: no maintenance mode):
// each burst is planned together, so it costs a few map versions and
// rebalances (as the first node counts them), not a round per node.
func TestBurstOfStartsAndHaltsIsBatched(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := formExternal(t, srv, 3, nil)
	watch := nodes[0]
	before := burstCounts(watch)

	opts := make([]clusterkit.Options, 5)
	for i := range opts {
		opts[i] = externalOptions(t, srv, fmt.Sprintf("node-%d", 4+i))
	}
	started := startAll(t, opts)
	nodes = append(nodes, started...)
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "8 nodes never agreed")
	join := burstCounts(watch).minus(before)
	t.Logf("5 starts at once: %d map versions, %d rebalances", join.versions, join.rebalances)

	before = burstCounts(watch)
	var wg sync.WaitGroup
	for _, ck := range started[:3] {
		wg.Go(ck.Halt)
	}
	wg.Wait()
	nodes = append(nodes[:3], started[3:]...)
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "5 nodes never agreed after the halts")
	leave := burstCounts(watch).minus(before)
	t.Logf("3 halts at once: %d map versions, %d rebalances", leave.versions, leave.rebalances)

	// A burst is one plan, its handoffs completed in one or two more
	// versions; a late straggler may cost one more round.
	for name, c := range map[string]counts{"5 starts": join, "3 halts": leave} {
		if c.rebalances > 2 || c.versions > 4 {
			t.Errorf("%s at once: %d rebalances and %d map versions, want at most 2 and 4", name, c.rebalances, c.versions)
		}
	}
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
