package examples_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// The data path on one node: its own join, then the first map's rebalance
// (start, one partition change per partition, completion), then lookups.
func Example_dataPath() {
	opts := localOptions("node-1")
	defer os.RemoveAll(opts.DataDir)
	var changes, noSource atomic.Int32
	done := make(chan struct{})
	ck, err := start(opts, func(ck *clusterkit.ClusterKit) {
		ck.OnNodeJoin(func(e *clusterkit.NodeJoinEvent) {
			fmt.Println("join:", e.Node.ID, "bootstrap:", e.IsBootstrap)
		})
		ck.OnRebalanceStart(func(e *clusterkit.RebalanceEvent) {
			fmt.Println("rebalance", e.ID, "start:", e.Trigger)
		})
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			changes.Add(1) // partitions run concurrently: count, do not print
			if e.NoSource {
				noSource.Add(1)
			}
			return nil
		})
		ck.OnRebalanceComplete(func(e *clusterkit.RebalanceEvent, d time.Duration) {
			fmt.Println("rebalance", e.ID, "complete after", changes.Load(), "partition changes,", noSource.Load(), "without a source")
			close(done)
		})
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ck.Stop(context.Background())
	<-done

	p, _ := ck.GetPartition("user:42")
	fmt.Println("user:42 →", p.ID, "primary:", ck.GetPrimary(p).ID, "epoch:", p.Epoch)
	// Output:
	// join: node-1 bootstrap: true
	// rebalance 1 start: node_join
	// rebalance 1 complete after 16 partition changes, 16 without a source
	// user:42 → partition-2 primary: node-1 epoch: 1
}
