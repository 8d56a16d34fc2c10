// Package clustertest forms ClusterKit clusters inside one process for
// tests: each node gets its own temp dir, loopback ports picked by the
// kernel, fast etcd ticks and a short lease, and is stopped by t.Cleanup.
// Applications use it to test their hooks against a real cluster.
package clustertest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Options returns options for a fast test node: loopback HTTP on a free
// port, a temp DataDir, etcd ticks of 10 ms / 100 ms, a 2 s lease (1 s is
// the minimum with these ticks, but a starved test machine can miss a
// keep-alive by that much), RF 3 / 16 partitions, and no rebalance delay
// (a crashed node's slots are re-replicated at once, so a test need not
// wait DefaultRebalanceDelay; tests of the delay set their own).
func Options(t testing.TB, nodeID string) clusterkit.Options {
	t.Helper()
	return clusterkit.Options{
		NodeID:            nodeID,
		HTTPAddr:          "127.0.0.1:0",
		DataDir:           t.TempDir(),
		PartitionCount:    16,
		ReplicationFactor: 3,
		LeaseTTL:          2 * time.Second,
		RebalanceDelay:    clusterkit.NoRebalanceDelay,
		ClusterToken:      "test-token",
		Embedded: clusterkit.EmbeddedConfig{
			TickInterval:    10 * time.Millisecond,
			ElectionTimeout: 100 * time.Millisecond,
		},
	}
}

// Start creates and starts a node from opts, with Stop registered on
// t.Cleanup. configure, if not nil, runs before Start (register hooks
// there).
func Start(t testing.TB, opts clusterkit.Options, configure func(*clusterkit.ClusterKit)) *clusterkit.ClusterKit {
	t.Helper()
	ck, err := clusterkit.New(opts)
	if err != nil {
		t.Fatalf("clustertest: New(%s): %v", opts.NodeID, err)
	}
	if configure != nil {
		configure(ck)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := ck.Start(ctx); err != nil {
		t.Fatalf("clustertest: Start(%s): %v", opts.NodeID, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ck.Stop(ctx)
	})
	return ck
}

// Addr returns the node's HTTP address, the JoinAddr for others.
func Addr(ck *clusterkit.ClusterKit) string { return ck.GetCluster().NodeAddr(ck.GetMyNodeID()) }

// Eventually polls cond every 10 ms until it holds or timeout passes, then
// fails the test with the message.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: after %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Agreed reports whether every node holds the same serving map (same
// version, primaries and replicas), planned for all of them (each partition
// served by min(RF, len(nodes)) live members, none incoming), and every node sees
// all the others as members.
func Agreed(nodes ...*clusterkit.ClusterKit) bool {
	if len(nodes) == 0 {
		return true
	}
	first := nodes[0].GetCluster()
	if len(first.Nodes) != len(nodes) || first.AssignmentVersion == 0 || !first.Settled {
		return false
	}
	want := min(first.ReplicationFactor, len(nodes))
	live := map[string]bool{}
	for _, n := range first.Nodes {
		live[n.ID] = true
	}
	for _, p := range first.Partitions {
		if len(p.IncomingNodes) > 0 || 1+len(p.ReplicaNodes) != want || !live[p.PrimaryNode] {
			return false
		}
		for _, r := range p.ReplicaNodes {
			if !live[r] {
				return false
			}
		}
	}
	for _, n := range nodes[1:] {
		c := n.GetCluster()
		if !c.Settled || c.AssignmentVersion != first.AssignmentVersion || len(c.Nodes) != len(first.Nodes) {
			return false
		}
		for i, p := range c.Partitions {
			q := first.Partitions[i]
			if p.PrimaryNode != q.PrimaryNode || !slices.Equal(p.ReplicaNodes, q.ReplicaNodes) || p.Epoch != q.Epoch {
				return false
			}
		}
	}
	return true
}

// Form starts n embedded nodes "node-1" … "node-n": the first bootstraps,
// the others join through it with its JoinToken (so they check its CA). opts, if not nil, adjusts each node's
// options. It returns once every node agrees on one map.
func Form(t testing.TB, n int, opts func(*clusterkit.Options), configure func(*clusterkit.ClusterKit)) []*clusterkit.ClusterKit {
	t.Helper()
	var nodes []*clusterkit.ClusterKit
	for i := 1; i <= n; i++ {
		o := Options(t, fmt.Sprintf("node-%d", i))
		if i > 1 {
			o.JoinAddr = Addr(nodes[0])
			if tok, err := nodes[0].JoinToken(); err == nil { // not with InsecurePlaintext
				o.ClusterToken = tok
			}
		}
		if opts != nil {
			opts(&o)
		}
		nodes = append(nodes, Start(t, o, configure))
	}
	Eventually(t, 30*time.Second, func() bool { return Agreed(nodes...) }, "%d nodes never agreed on one map", n)
	return nodes
}

// HoldHandoffs registers an OnPartitionChange handler on ck that keeps
// every partition ck gains incoming (its handoff unfinished) until release
// is closed or the change is withdrawn. Register it before Start to hold
// the node's first handoffs too.
func HoldHandoffs(ck *clusterkit.ClusterKit, release <-chan struct{}) {
	ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
		if e.CopyToNode.ID != ck.GetMyNodeID() {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}
