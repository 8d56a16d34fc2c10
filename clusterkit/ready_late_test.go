package clusterkit_test

import (
	"context"
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
		t.Fatal("node-4 wrote its ready record no second time")
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(nodes...) },
		"node-4's handoffs never completed (incoming: %v)", incomingOf(nodes[0], "node-4"))
}

// incomingOf lists the partitions ck's map has id receiving.
func incomingOf(ck *clusterkit.ClusterKit, id string) []int {
	var out []int
	for _, p := range ck.GetCluster().Partitions {
		for _, n := range p.IncomingNodes {
			if n == id {
				out = append(out, p.Index)
			}
		}
	}
	return out
}
