package clusterkit_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

func TestStuckHandoffIsReportedAndCancelled(t *testing.T) {
	srv := etcdtest.Start(t)
	timeout := func(o *clusterkit.Options) { o.HandoffTimeout = 300 * time.Millisecond }
	nodes := startExternal(t, srv, 3, timeout)
	n1 := nodes[0]
	before := n1.GetCluster()
	o := externalOptions(t, srv, "node-4")
	timeout(&o)
	var mu sync.Mutex
	var reasons []string
	n4 := clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID == "node-4" {
				return errors.New("disk full")
			}
			return nil
		})
		ck.OnClusterHealthChange(func(e *clusterkit.ClusterHealthEvent) {
			mu.Lock()
			reasons = append(reasons, e.Reasons...)
			mu.Unlock()
		})
	})
	clustertest.Eventually(t, 15*time.Second, func() bool {
		h := n4.HealthCheck()
		return h.StuckHandoffs > 0 && h.StuckHandoffs == len(h.Handoffs)
	}, "node-4's failing handoffs were never reported stuck: %+v", n4.FailingHandoffs())
	f := n4.FailingHandoffs()[0]
	if f.Node != "node-4" || f.Attempts < 1 || f.LastError != "disk full" || !f.Stuck {
		t.Fatalf("failing handoff: %+v", f)
	}
	if got := metricValue(t, n4, "clusterkit_handoffs_stuck"); got == "0" {
		t.Fatal("clusterkit_handoffs_stuck = 0 with stuck handoffs")
	}
	var health struct {
		Reasons  []string                    `json:"reasons"`
		Handoffs []clusterkit.FailingHandoff `json:"failing_handoffs"`
	}
	getJSON(t, n4, "/health/detailed", http.StatusOK, &health)
	stuckReason := func(rs []string) bool {
		return slices.ContainsFunc(rs, func(r string) bool { return strings.Contains(r, "disk full") && strings.Contains(r, "CancelHandoff") })
	}
	if !stuckReason(health.Reasons) || len(health.Handoffs) == 0 {
		t.Fatalf("/health/detailed: %+v, want the stuck handoffs and a reason", health)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stuckReason(reasons)
	}, "OnClusterHealthChange never reported the stuck handoff")
	// Cancel one over HTTP on another node: the partition keeps its
	// serving set and node-4 stops receiving it.
	p := f.Partition
	path := "/partitions/" + clusterkit.PartitionID(p) + "/cancel-handoff"
	if resp, b := adminCall(t, n1, http.MethodPost, path, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d: %s", path, resp.StatusCode, b)
	}
	part := n1.GetCluster().Partitions[p]
	if len(part.IncomingNodes) != 0 || !slices.Equal(servingSet(part), servingSet(before.Partitions[p])) {
		t.Fatalf("partition %d after the cancel: %+v, want its old serving set %+v and nothing incoming", p, part, before.Partitions[p])
	}
	clustertest.Eventually(t, 5*time.Second, func() bool {
		return !slices.ContainsFunc(n4.FailingHandoffs(), func(f clusterkit.FailingHandoff) bool { return f.Partition == p })
	}, "node-4 still receives the cancelled partition %d", p)
	if resp, _ := adminCall(t, n1, http.MethodPost, path, ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("cancelling a handoff that is not under way: status %d, want 404", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n1.CancelHandoff(ctx, 99); !errors.Is(err, clusterkit.ErrInvalidArgument) {
		t.Fatalf("CancelHandoff(99): %v, want ErrInvalidArgument", err)
	}
	// Cancel the rest: the rebalance ends with every serving set as it was.
	for _, part := range n1.GetCluster().Partitions {
		if len(part.IncomingNodes) > 0 {
			if err := n1.CancelHandoff(ctx, part.Index); err != nil {
				t.Fatalf("CancelHandoff(%d): %v", part.Index, err)
			}
		}
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return noIncoming(n1.GetCluster()) && len(n4.FailingHandoffs()) == 0 },
		"handoffs still under way after cancelling them all")
	for i, p := range n1.GetCluster().Partitions {
		if !slices.Equal(servingSet(p), servingSet(before.Partitions[i])) {
			t.Fatalf("partition %d changed: %+v → %+v", i, before.Partitions[i], p)
		}
	}
}
