package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// burst is what k nodes starting, or halting, at once cost: the step's
// time (from the first Start or Halt until every node agrees) and etcd
// traffic, and the map versions and rebalances the probe node (the first)
// saw until the cluster was quiet again.
type burst struct {
	step
	k                    int
	versions, rebalances int64
}

// burstSize is -burst, or N/10 (at least 2) when it is negative.
func (c config) burstSize(n int) int {
	if c.burst >= 0 {
		return c.burst
	}
	return max(2, n/10)
}

// runBursts starts k nodes at once, then halts k nodes that do not lead
// at once (the ones it started), each measured like a join.
func runBursts(c config, cl *cluster, obs *observer, k int, profile func(string) string) (start, halt burst, err error) {
	start, err = measureBurst(c, cl, obs, k, profile("burst-start"), func(ctx context.Context) (time.Time, time.Time, error) {
		from := time.Now()
		if err := cl.startNodes(ctx, k, k); err != nil {
			return from, from, err
		}
		end, err := cl.agreedOn(ctx, func(*clusterkit.Cluster) bool { return true })
		return from, end, err
	})
	if err != nil {
		return start, halt, fmt.Errorf("burst of starts: %w", err)
	}
	if err := cl.verify(); err != nil {
		return start, halt, fmt.Errorf("after the burst of starts: %w", err)
	}
	halt, err = measureBurst(c, cl, obs, k, profile("burst-halt"), func(ctx context.Context) (time.Time, time.Time, error) {
		var victims []*clusterkit.ClusterKit
		for i := len(cl.nodes) - 1; i >= 1 && len(victims) < k; i-- {
			if !cl.nodes[i].IsLeader() {
				victims = append(victims, cl.nodes[i])
			}
		}
		from := time.Now()
		var wg sync.WaitGroup
		for _, v := range victims {
			wg.Go(v.Halt)
			cl.remove(v)
		}
		wg.Wait()
		end, err := cl.agreedOn(ctx, func(m *clusterkit.Cluster) bool {
			for _, v := range victims {
				if hasNode(m, v.GetMyNodeID()) || serves(m, v.GetMyNodeID()) {
					return false
				}
			}
			return true
		})
		return from, end, err
	})
	if err != nil {
		return start, halt, fmt.Errorf("burst of halts: %w", err)
	}
	return start, halt, cl.verify()
}

func measureBurst(c config, cl *cluster, obs *observer, k int, profile string, act func(ctx context.Context) (time.Time, time.Time, error)) (burst, error) {
	probe := cl.nodes[0]
	before := probe.GetMetrics()
	st, err := measure(c, obs, profile, act)
	after := probe.GetMetrics()
	return burst{step: st, k: k, versions: after.AssignmentVersion - before.AssignmentVersion,
		rebalances: after.RebalancesStarted - before.RebalancesStarted}, err
}
