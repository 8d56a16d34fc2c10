package clusterkit_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// TestLateReadyWriteDoesNotHideANewerOne: a write of a node's ready record
// that its client gave up on (a request timeout on a loaded etcd) can
// still reach etcd, after the node's next write. It must not replace that
// newer record: the node would believe its record written, the leader
// would never see the newer entries, and the node's handoffs would stay
// incoming for good (a 1,000 × 16,384 scalebench formation wedged at 251
// nodes this way, one node with 194 partitions incoming).
func TestLateReadyWriteDoesNotHideANewerOne(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := formExternal(t, srv, 3, nil)
	late := etcdtest.NewLateWrite(func(key, _ []byte) bool { return strings.HasSuffix(string(key), "/ready/node-4") })
	clusterkit.SetTestDialOptions(t, late.DialOption())
	var first atomic.Bool
	nodes = append(nodes, clustertest.Start(t, externalOptions(t, srv, "node-4"), func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID != "node-4" || first.CompareAndSwap(false, true) {
				return nil // node-4's first partition is ready at once: the held write lists only it
			}
			select {
			case <-late.Held:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}))
	select {
	case err := <-late.Landed:
		t.Logf("the held write reached etcd after the next one (error %v)", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the held write was never sent")
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(nodes...) },
		"node-4's handoffs never completed (incoming: %v)", incomingOf(nodes[0], "node-4"))
}

// incomingOf lists the partitions ck's map has id receiving.
func incomingOf(ck *clusterkit.ClusterKit, id string) []int {
	var out []int
	for _, p := range ck.GetCluster().Partitions {
		if slices.Contains(p.IncomingNodes, id) {
			out = append(out, p.Index)
		}
	}
	return out
}

// TestLateMaintenanceRequestDoesNotUndoANewerOne: an operator's "maintenance
// on" whose request timed out can still reach etcd after their "off". The
// leader must not apply it then: placement would freeze until someone
// noticed and turned it off again.
func TestLateMaintenanceRequestDoesNotUndoANewerOne(t *testing.T) {
	srv := etcdtest.Start(t)
	late := etcdtest.NewHeldWrite(func(key, _ []byte) bool { return strings.Contains(string(key), "/control-request/maintenance-on") })
	clusterkit.SetTestDialOptions(t, late.DialOption())
	nodes := formExternal(t, srv, 2, nil)
	if err := nodes[1].SetMaintenance(contextTimeout(t, 300*time.Millisecond), true); err == nil {
		t.Fatal("the held request was applied")
	}
	if err := nodes[1].SetMaintenance(contextTimeout(t, 10*time.Second), false); err != nil {
		t.Fatalf("SetMaintenance(false): %v", err)
	}
	t.Logf("the held request reached etcd after the newer one was applied (error %v)", late.Land())
	assertStays(t, time.Second, func() string {
		for _, n := range nodes {
			if m := n.GetCluster().Maintenance; m != "" {
				return fmt.Sprintf("%s: maintenance %q", n.GetMyNodeID(), m)
			}
		}
		return ""
	})
}

// TestLateCordonDoesNotUndoANewerUncordon: the same for an operator's
// order on a node: a cordon that reaches etcd after the uncordon that
// followed it must not cordon the node.
func TestLateCordonDoesNotUndoANewerUncordon(t *testing.T) {
	srv := etcdtest.Start(t)
	late := etcdtest.NewHeldWrite(func(key, value []byte) bool {
		return strings.HasSuffix(string(key), "/operator/node-2") && strings.Contains(string(value), "cordoned")
	})
	clusterkit.SetTestDialOptions(t, late.DialOption())
	nodes := formExternal(t, srv, 3, nil)
	if err := nodes[0].CordonNode(contextTimeout(t, 300*time.Millisecond), "node-2"); err == nil {
		t.Fatal("the held cordon was applied")
	}
	if err := nodes[0].UncordonNode(contextTimeout(t, 10*time.Second), "node-2"); err != nil {
		t.Fatalf("UncordonNode: %v", err)
	}
	t.Logf("the held cordon reached etcd after the uncordon was applied (error %v)", late.Land())
	assertStays(t, time.Second, func() string {
		for _, n := range nodes {
			if ops := n.NodeOperations(); len(ops) > 0 {
				return fmt.Sprintf("%s: operations %+v", n.GetMyNodeID(), ops)
			}
		}
		return ""
	})
}

// assertStays fails the test if wrong reports something (non-empty) within
// d, checking every 10 ms.
func assertStays(t *testing.T, d time.Duration, wrong func() string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if w := wrong(); w != "" {
			t.Fatal(w)
		}
	}
}
