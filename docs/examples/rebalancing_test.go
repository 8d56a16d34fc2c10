package examples_test

import (
	"context"
	"fmt"
	"os"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// A second node joins. Its partitions stay incoming, and node-1 keeps
// serving them, until node-2's OnPartitionChange handler returns nil (here
// it waits for copied to close, standing in for a data copy).
func Example_handoff() {
	o1 := localOptions("node-1")
	defer os.RemoveAll(o1.DataDir)
	n1, err := start(o1, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n1.Stop(context.Background())

	o2 := localOptions("node-2")
	o2.JoinAddr = n1.GetCluster().NodeAddr("node-1")
	defer os.RemoveAll(o2.DataDir)
	copied := make(chan struct{})
	n2, err := start(o2, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID != ck.GetMyNodeID() {
				return nil
			}
			select {
			case <-copied: // copy e.PartitionIndex from e.CopyFromNodes here
				return nil
			case <-ctx.Done(): // the change was withdrawn or the node stops
				return ctx.Err()
			}
		})
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n2.Stop(context.Background())

	count := func(ck *clusterkit.ClusterKit) (incoming, primaries int) {
		for _, p := range ck.GetPartitionsForNode("node-2") {
			if p.PrimaryNode == "node-2" {
				primaries++
			}
		}
		for _, p := range ck.GetCluster().Partitions {
			incoming += len(p.IncomingNodes)
		}
		return incoming, primaries
	}
	p, _ := n1.GetPartition("user:42")
	fmt.Println("before: primary", p.PrimaryNode, "epoch", p.Epoch)
	in, prim := 0, 0
	eventually(func() bool { in, prim = count(n1); return in > 0 }) // the leader's map after the join
	fmt.Println("while copying: incoming", in, "node-2 primaries", prim)

	close(copied)
	fmt.Println("settled:", waitSettled(n1, n2))
	p, _ = n1.GetPartition("user:42")
	in, prim = count(n1)
	fmt.Println("after: incoming", in, "node-2 primaries", prim, "user:42 epoch", p.Epoch)
	// Output:
	// before: primary node-1 epoch 1
	// while copying: incoming 16 node-2 primaries 0
	// settled: true
	// after: incoming 0 node-2 primaries 8 user:42 epoch 2
}
