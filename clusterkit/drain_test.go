package clusterkit_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// adminCall sends an authorized admin request: every admin HTTP call of the
// operations tests goes through it (and call), so a change of scheme or
// auth is one line.
func adminCall(t testing.TB, ck *clusterkit.ClusterKit, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	return call(t, ck, method, path, body, "Authorization", "Bearer "+testToken)
}

// held returns the partitions node id serves or receives in c, by index.
func held(c *clusterkit.Cluster, id string) []int {
	var out []int
	for _, p := range c.Partitions {
		if p.PrimaryNode == id || slices.Contains(p.ReplicaNodes, id) || slices.Contains(p.IncomingNodes, id) {
			out = append(out, p.Index)
		}
	}
	return out
}

// operation returns node id's operator state as ck sees it.
func operation(ck *clusterkit.ClusterKit, id string) (clusterkit.NodeOperationStatus, bool) {
	for _, op := range ck.NodeOperations() {
		if op.Node == id {
			return op, true
		}
	}
	return clusterkit.NodeOperationStatus{}, false
}

// metricValue returns the value of an unlabelled metric in ck's /metrics.
func metricValue(t *testing.T, ck *clusterkit.ClusterKit, name string) string {
	t.Helper()
	_, b := call(t, ck, http.MethodGet, "/metrics", "")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("metric %s not in /metrics", name)
	return ""
}

func TestDrainMovesPartitionsOffAfterNewHoldersAreReady(t *testing.T) {
	var failing atomic.Bool // the nodes' handoffs fail while set
	nodes := formOps(t, 4, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID == ck.GetMyNodeID() && failing.Load() {
				return errors.New("copy refused by the test")
			}
			return nil
		})
	})
	n1, n4 := nodes[0], nodes[3]
	before := held(n1.GetCluster(), "node-4")
	if len(before) == 0 {
		t.Fatal("node-4 holds nothing before the drain")
	}
	failing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Over HTTP on another node than the drained one.
	if resp, b := adminCall(t, nodes[1], http.MethodPost, "/nodes/node-4/drain", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /nodes/node-4/drain: status %d: %s", resp.StatusCode, b)
	}
	op, ok := operation(nodes[1], "node-4")
	if !ok || op.Operation != clusterkit.NodeDraining || !op.Applied || op.Done || op.By != "node-2" {
		t.Fatalf("after the drain call: operation %+v (%v), want draining, applied, not done, by node-2", op, ok)
	}
	// The new holders cannot get ready: node-4 keeps serving all it held.
	time.Sleep(300 * time.Millisecond)
	c := n1.GetCluster()
	for _, p := range before {
		part := c.Partitions[p]
		if part.PrimaryNode != "node-4" && !slices.Contains(part.ReplicaNodes, "node-4") {
			t.Fatalf("partition %d lost node-4 before its new holder was ready: %+v", p, part)
		}
	}
	if h := n1.HealthCheck(); h.DrainingPartitions == 0 || !slices.Contains(h.DrainingNodes, "node-4") ||
		!slices.ContainsFunc(h.Reasons, func(r string) bool { return strings.Contains(r, "draining") }) {
		t.Fatalf("health during the drain: %+v, want node-4 draining with partitions left and a reason", h)
	}
	if got := metricValue(t, n1, "clusterkit_nodes_draining"); got != "1" {
		t.Fatalf("clusterkit_nodes_draining = %s, want 1", got)
	}
	failing.Store(false)
	clustertest.Eventually(t, 20*time.Second, func() bool {
		op, _ := operation(n1, "node-4")
		return op.Done
	}, "the drain never finished: %+v", n1.NodeOperations())
	c = n1.GetCluster()
	if got := held(c, "node-4"); len(got) != 0 {
		t.Fatalf("node-4 still holds %v after the drain", got)
	}
	if len(c.Nodes) != 4 {
		t.Fatalf("members after the drain: %d, want 4 (a drained node stays a member)", len(c.Nodes))
	}
	clustertest.Eventually(t, 10*time.Second, func() bool {
		for _, p := range n1.GetCluster().Partitions {
			if len(p.IncomingNodes) > 0 || 1+len(p.ReplicaNodes) != 3 {
				return false
			}
		}
		return true
	}, "partitions never settled on three replicas without node-4")
	if got := metricValue(t, n1, "clusterkit_drain_partitions_remaining"); got != "0" {
		t.Fatalf("clusterkit_drain_partitions_remaining = %s, want 0", got)
	}
	// Stopping the drained node moves nothing.
	settled := n1.GetCluster()
	if err := n4.Stop(ctx); err != nil {
		t.Fatalf("Stop(node-4): %v", err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(nodes[:3]...) }, "three nodes never agreed after node-4 stopped")
	after := n1.GetCluster()
	for i, p := range after.Partitions {
		q := settled.Partitions[i]
		if p.PrimaryNode != q.PrimaryNode || !slices.Equal(p.ReplicaNodes, q.ReplicaNodes) || p.Epoch != q.Epoch {
			t.Fatalf("partition %d changed when the drained node stopped: %+v → %+v", i, q, p)
		}
	}
}

func TestCordonKeepsPartitionsAcrossLeaderChangeAndJoin(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := formExternal(t, srv, 4, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	leader := nodes[0].GetCluster().Leader
	// Cordon a node that is not the leader, through a node that is not.
	var target, via, lead *clusterkit.ClusterKit
	for _, n := range nodes {
		switch {
		case n.GetMyNodeID() == leader:
			lead = n
		case target == nil:
			target = n
		case via == nil:
			via = n
		}
	}
	id := target.GetMyNodeID()
	want := held(via.GetCluster(), id)
	if err := via.CordonNode(ctx, id); err != nil {
		t.Fatalf("CordonNode(%s): %v", id, err)
	}
	if got := metricValue(t, via, "clusterkit_nodes_cordoned"); got != "1" {
		t.Fatalf("clusterkit_nodes_cordoned = %s, want 1", got)
	}
	if got := held(via.GetCluster(), id); !slices.Equal(got, want) {
		t.Fatalf("cordoning %s moved partitions: %v → %v", id, want, got)
	}
	// The leader leaves: the new leader replans without it, and the
	// cordoned node gains nothing.
	if err := lead.Stop(ctx); err != nil {
		t.Fatalf("Stop(leader %s): %v", leader, err)
	}
	clustertest.Eventually(t, 15*time.Second, func() bool {
		c := via.GetCluster()
		return c.Leader != "" && c.Leader != leader && len(c.Nodes) == 3 && noIncoming(c)
	}, "no new leader settled after %s stopped: %+v", leader, via.GetCluster())
	if got := held(via.GetCluster(), id); !slices.Equal(got, want) {
		t.Fatalf("after the leader change the cordoned %s holds %v, want %v", id, got, want)
	}
	// A join takes nothing from it either.
	n5 := clustertest.Start(t, externalOptions(t, srv, "node-5"), nil)
	clustertest.Eventually(t, 15*time.Second, func() bool {
		c := via.GetCluster()
		return len(c.Nodes) == 4 && noIncoming(c) && len(held(c, "node-5")) > 0
	}, "node-5 never got partitions")
	if got := held(via.GetCluster(), id); !slices.Equal(got, want) {
		t.Fatalf("after a join the cordoned %s holds %v, want %v", id, got, want)
	}
	// Uncordon over HTTP: nothing moves by itself.
	if resp, b := adminCall(t, n5, http.MethodPost, "/nodes/"+id+"/uncordon", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST uncordon: status %d: %s", resp.StatusCode, b)
	}
	if _, ok := operation(n5, id); ok {
		t.Fatalf("%s still under an order after uncordon: %+v", id, n5.NodeOperations())
	}
	if got := held(n5.GetCluster(), id); !slices.Equal(got, want) {
		t.Fatalf("uncordon moved partitions: %v, want %v", got, want)
	}
}

// formOps starts n nodes on a new external etcd (configure, if not nil,
// runs before each Start) and returns once they agree.
func formOps(t *testing.T, n int, configure func(*clusterkit.ClusterKit)) []*clusterkit.ClusterKit {
	t.Helper()
	return startExternal(t, etcdtest.Start(t), n, nil, configure)
}

func noIncoming(c *clusterkit.Cluster) bool {
	for _, p := range c.Partitions {
		if len(p.IncomingNodes) > 0 {
			return false
		}
	}
	return c.AssignmentVersion > 0
}

func TestUncordonCancelsADrainInFlight(t *testing.T) {
	var failing atomic.Bool
	nodes := formOps(t, 4, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID == ck.GetMyNodeID() && failing.Load() {
				return errors.New("copy refused by the test")
			}
			return nil
		})
	})
	n1 := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := n1.GetCluster()
	failing.Store(true)
	if err := n1.DrainNode(ctx, "node-3"); err != nil {
		t.Fatalf("DrainNode: %v", err)
	}
	if c := n1.GetCluster(); noIncoming(c) {
		t.Fatal("the drain started no move")
	}
	if err := n1.UncordonNode(ctx, "node-3"); err != nil {
		t.Fatalf("UncordonNode: %v", err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return noIncoming(n1.GetCluster()) }, "the cancelled drain's moves never ended")
	after := n1.GetCluster()
	for i, p := range after.Partitions {
		q := before.Partitions[i]
		if !slices.Equal(servingSet(p), servingSet(q)) {
			t.Fatalf("partition %d changed by a cancelled drain whose moves never finished: %+v → %+v", i, q, p)
		}
	}
}

func TestNodeOperationErrors(t *testing.T) {
	nodes := formOps(t, 1, nil)
	ck := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"cordon unknown", ck.CordonNode(ctx, "nobody"), clusterkit.ErrNotFound},
		{"drain unknown", ck.DrainNode(ctx, "nobody"), clusterkit.ErrNotFound},
		{"bad id", ck.DrainNode(ctx, "no/slash"), clusterkit.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.want) {
				t.Fatalf("got %v, want %v", tc.err, tc.want)
			}
		})
	}
	// Draining the only node: applied, but nothing can take its partitions.
	if err := ck.DrainNode(ctx, "node-1"); err != nil {
		t.Fatalf("DrainNode(only node): %v", err)
	}
	if op, _ := operation(ck, "node-1"); op.Done || op.Partitions != 16 {
		t.Fatalf("draining the only node: %+v, want not done with 16 partitions", op)
	}
	for path, want := range map[string]int{
		"/nodes/nobody/cordon": http.StatusNotFound, "/nodes/node-1/explode": http.StatusNotFound,
		"/nodes/node-1/uncordon": http.StatusOK,
	} {
		if resp, b := adminCall(t, ck, http.MethodPost, path, ""); resp.StatusCode != want {
			t.Errorf("POST %s: status %d, want %d: %s", path, resp.StatusCode, want, b)
		}
	}
	if resp, _ := call(t, ck, http.MethodPost, "/nodes/node-1/drain", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("drain without token: status %d, want 401", resp.StatusCode)
	}
}

// servingSet returns p's serving nodes, sorted.
func servingSet(p clusterkit.Partition) []string {
	return slices.Sorted(slices.Values(append([]string{p.PrimaryNode}, p.ReplicaNodes...)))
}
