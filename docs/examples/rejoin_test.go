package examples_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// receive is an OnPartitionChange handler for a store that keeps its data
// on disk (Options.DurableStorage): it reads the event's flags in the
// order that matters.
func receive(me string, catchUps, copies *atomic.Int32) clusterkit.PartitionChangeHandler {
	return func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
		switch {
		case e.CopyToNode.ID != me:
			return nil // another node's gain; it does the work
		case e.Promoted:
			return nil // already a replica, now the primary: nothing to copy
		case e.NoSource:
			return nil // no holder lives or may return: restore a backup, or start empty
		case e.CatchUp:
			catchUps.Add(1) // kept the data: fetch only what changed since (from e.CopyFromNodes)
		default:
			copies.Add(1) // wipe the partition and copy it whole from e.CopyFromNodes
		}
		return nil
	}
}

// node-2 (durable storage) crashes and a new process starts with the same
// options: the others see a rejoin of a new incarnation that kept its data,
// and node-2 catches its partitions up instead of copying them.
func Example_restart() {
	o1 := localOptions("node-1")
	defer os.RemoveAll(o1.DataDir)
	rejoined := make(chan *clusterkit.NodeRejoinEvent, 1)
	n1, err := start(o1, func(ck *clusterkit.ClusterKit) {
		ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) { rejoined <- e })
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n1.Stop(context.Background())

	o2 := localOptions("node-2")
	o2.JoinAddr = n1.GetCluster().NodeAddr("node-1")
	o2.DurableStorage = true
	defer os.RemoveAll(o2.DataDir)
	var catchUps, copies atomic.Int32
	n2, err := start(o2, func(ck *clusterkit.ClusterKit) { ck.OnPartitionChange(receive("node-2", &catchUps, &copies)) })
	if err != nil {
		fmt.Println(err)
		return
	}
	waitSettled(n1, n2)
	fmt.Println("first start: copies", copies.Load(), "catch-ups", catchUps.Load())

	n2.Halt() // as a crash: no goodbye, the lease is left to expire
	copies.Store(0)
	n2, err = start(o2, func(ck *clusterkit.ClusterKit) { ck.OnPartitionChange(receive("node-2", &catchUps, &copies)) })
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n2.Stop(context.Background())
	e := <-rejoined
	fmt.Println("rejoin:", e.Node.ID, "same incarnation:", e.SameIncarnation, "data kept:", e.DataKept)
	waitSettled(n1, n2)
	fmt.Println("restart: copies", copies.Load(), "catch-ups", catchUps.Load())
	// Output:
	// first start: copies 16 catch-ups 0
	// rejoin: node-2 same incarnation: false data kept: true
	// restart: copies 0 catch-ups 16
}
