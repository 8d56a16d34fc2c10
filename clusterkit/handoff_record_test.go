package clusterkit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// TestFailingHandoffsAreSeenClusterWide starts two nodes, then node-3,
// whose handoffs of partitions 3 and 7 fail: node-1 reports them (API and
// GET /handoffs) with node-3 as their node, stuck after HandoffTimeout;
// node-3 writes its record once per change, not once per retry; partition
// 3 recovers and partition 7 is cancelled from node-2, and both leave
// every node's list and etcd.
func TestFailingHandoffsAreSeenClusterWide(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	timeout := func(o *clusterkit.Options) { o.HandoffTimeout = 300 * time.Millisecond }
	nodes := startExternal(t, srv, 2, timeout)
	n1, n2 := nodes[0], nodes[1]
	var mu sync.Mutex
	failing := map[int]bool{3: true, 7: true}
	o := externalOptions(t, srv, "node-3")
	timeout(&o)
	n3 := clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			mu.Lock()
			defer mu.Unlock()
			if e.CopyToNode.ID == "node-3" && failing[e.PartitionIndex] {
				return fmt.Errorf("disk full under %s", e.PartitionID)
			}
			return nil
		})
	})
	// seen returns node's cluster-wide failing handoffs as partition →
	// the handoff, failing if one is not node-3's.
	seen := func(node *clusterkit.ClusterKit) map[int]clusterkit.FailingHandoff {
		out := map[int]clusterkit.FailingHandoff{}
		for _, f := range node.ClusterFailingHandoffs() {
			if f.Node != "node-3" {
				t.Fatalf("%s reports a failing handoff of %s: %+v", node.GetMyNodeID(), f.Node, f)
			}
			out[f.Partition] = f
		}
		return out
	}
	bothStuck := func(node *clusterkit.ClusterKit) bool {
		s := seen(node)
		return len(s) == 2 && s[3].Stuck && s[7].Stuck
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return bothStuck(n1) && bothStuck(n2) },
		"node-1 and node-2 never saw node-3's stuck handoffs: %+v", n1.ClusterFailingHandoffs())
	if f := seen(n1)[7]; f.LastError != "disk full under partition-7" || f.Attempts < 1 || f.Since.IsZero() {
		t.Fatalf("node-1's report of partition 7: %+v", f)
	}
	if got := n1.FailingHandoffs(); len(got) != 0 {
		t.Fatalf("node-1's own FailingHandoffs: %+v, want none (node-3's are not its own)", got)
	}
	if got := metricValue(t, n1, "clusterkit_handoffs_failing"); got != "0" {
		t.Fatalf("node-1's clusterkit_handoffs_failing = %s, want 0 (per node)", got)
	}
	var body struct {
		Node    string                      `json:"node"`
		Failing []clusterkit.FailingHandoff `json:"failing"`
	}
	getJSON(t, n1, "/handoffs", http.StatusOK, &body)
	if body.Node != "node-1" || len(body.Failing) != 2 || body.Failing[0].Partition != 3 || body.Failing[1].Partition != 7 ||
		body.Failing[0].Node != "node-3" || !body.Failing[1].Stuck {
		t.Fatalf("GET /handoffs on node-1: %+v, want node-3's partitions 3 and 7, stuck", body)
	}

	// Retries that fail again write nothing.
	key := "/clusterkit/default/handoffs/node-3"
	version := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return 0
		}
		return resp.Kvs[0].Version
	}
	attempts := func() int {
		for _, f := range n3.FailingHandoffs() {
			if f.Partition == 7 {
				return f.Attempts
			}
		}
		return 0
	}
	v0, a0 := version(), attempts()
	if v0 == 0 {
		t.Fatalf("%s absent while node-3's handoffs fail", key)
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return attempts() >= a0+2 }, "node-3 retried no more")
	if v := version(); v != v0 {
		t.Fatalf("%s written %d times more while node-3 retried (attempts %d → %d), want 0", key, v-v0, a0, attempts())
	}
	t.Logf("%s: %d puts for 2 partitions failing then stuck, none for retries %d → %d", key, v0, a0, attempts())

	// Partition 3 recovers: it leaves the others' lists.
	mu.Lock()
	failing[3] = false
	mu.Unlock()
	clustertest.Eventually(t, 15*time.Second, func() bool {
		s1, s2 := seen(n1), seen(n2)
		return len(s1) == 1 && len(s2) == 1 && s1[7].Stuck
	}, "partition 3's handoff succeeded but node-1 still reports %+v", n1.ClusterFailingHandoffs())

	// Partition 7 is cancelled from node-2: it leaves every list, and the
	// record is deleted.
	path := "/partitions/" + clusterkit.PartitionID(7) + "/cancel-handoff"
	if resp, b := adminCall(t, n2, http.MethodPost, path, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s on node-2: status %d: %s", path, resp.StatusCode, b)
	}
	clustertest.Eventually(t, 15*time.Second, func() bool {
		return len(n1.ClusterFailingHandoffs()) == 0 && len(n2.ClusterFailingHandoffs()) == 0 && len(n3.ClusterFailingHandoffs()) == 0
	}, "partition 7's handoff was cancelled but node-1 still reports %+v", n1.ClusterFailingHandoffs())
	clustertest.Eventually(t, 5*time.Second, func() bool { return version() == 0 }, "%s still in etcd with nothing failing", key)
	if p := n1.GetCluster().Partitions[7]; slices.Contains(p.IncomingNodes, "node-3") {
		t.Fatalf("partition 7 after the cancel: %+v", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n1.CancelHandoff(ctx, 7); !errors.Is(err, clusterkit.ErrNotFound) {
		t.Fatalf("CancelHandoff(7) again: %v, want ErrNotFound", err)
	}
}
