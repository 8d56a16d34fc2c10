package examples_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// The operator's calls from Go; the HTTP API and the CLI make the same.
// Each returns once the leader applied it.
func Example_operations() {
	opts := localOptions("node-1")
	defer os.RemoveAll(opts.DataDir)
	ck, err := start(opts, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ck.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	if err := ck.SetMaintenance(ctx, true); err != nil { // freeze placement: failover only
		fmt.Println(err)
		return
	}
	fmt.Println("maintenance:", ck.GetCluster().Maintenance != "", ck.HealthCheck().Status)
	if err := ck.SetMaintenance(ctx, false); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("maintenance:", ck.GetCluster().Maintenance != "")

	fmt.Println("end delay:", ck.EndRebalanceDelay(ctx))   // give away nodes' slots up now
	fmt.Println("rebalance:", ck.RebalancePartitions(ctx)) // plan again; balanced: nothing moves
	err = ck.RemoveNode(ctx, "node-9")
	fmt.Println("remove node-9:", errors.Is(err, clusterkit.ErrNotFound))
	// Output:
	// maintenance: true degraded
	// maintenance: false
	// end delay: <nil>
	// rebalance: <nil>
	// remove node-9: true
}
