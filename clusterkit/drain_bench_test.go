package clusterkit

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

// settledInput returns the input of a leader whose map is settled on n
// members × partitions × RF 3.
func settledInput(b testing.TB, n, partitions int) reconcileInput {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%03d", i)
	}
	in := reconcileInput{cfg: clusterConfig{FormatVersion: 1, PartitionCount: partitions, ReplicationFactor: 3, Hash: "xxhash64"},
		members: members(ids...), now: time.Unix(100, 0)}
	out, err := reconcile(in)
	if err != nil {
		b.Fatal(err)
	}
	in.assign, in.rebalance = out.assign, out.rebalance
	return in
}

// BenchmarkReconcileOperatorOrder measures the leader's round that applies
// an operator's order at 100 nodes × 1,024 partitions × RF 3: a drain
// (replan without the node) and a join while one node is cordoned (replan
// plus keepCordoned). moves/op is the handoffs the round starts.
func BenchmarkReconcileOperatorOrder(b *testing.B) {
	for _, tc := range []struct {
		name string
		set  func(in *reconcileInput)
	}{
		{"drain", func(in *reconcileInput) {
			in.operator = map[string]operatorRecord{"n050": {Op: NodeDraining}}
		}},
		{"join-with-cordon", func(in *reconcileInput) {
			in.operator = map[string]operatorRecord{"n050": {Op: NodeCordoned}}
			in.members["n100"] = memberRecord{ID: "n100", Weight: 1, State: memberActive, Healthy: true}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			in := settledInput(b, 100, 1024)
			tc.set(&in)
			var moves int
			for b.Loop() {
				out, err := reconcile(in)
				if err != nil {
					b.Fatal(err)
				}
				moves = out.assign.incomingCount()
			}
			b.ReportMetric(float64(moves), "moves/op")
		})
	}
}

// TestReconcileCordonAndDrainAtScale checks the planner's rules at 100
// nodes × 1,024 partitions: a join leaves a cordoned node's slots exactly
// as they were, and a drain moves exactly the drained node's slots.
func TestReconcileCordonAndDrainAtScale(t *testing.T) {
	in := settledInput(t, 100, 1024)
	slots := func(a *assignment, id string) []int {
		var out []int
		for p, ps := range a.Partitions {
			if slices.Contains(ps.Target, id) {
				out = append(out, p)
			}
		}
		return out
	}
	held := slots(in.assign, "n050")
	cordon := in
	cordon.operator = map[string]operatorRecord{"n050": {Op: NodeCordoned}}
	cordon.members = maps.Clone(in.members)
	cordon.members["n100"] = memberRecord{ID: "n100", Weight: 1, State: memberActive, Healthy: true}
	out, err := reconcile(cordon)
	if err != nil {
		t.Fatal(err)
	}
	if got := slots(out.assign, "n050"); !slices.Equal(got, held) {
		t.Fatalf("a join moved the cordoned node's slots: %d → %d", len(held), len(got))
	}
	if n := len(slots(out.assign, "n100")); n < 25 {
		t.Fatalf("the joining node got %d slots, want about 30", n)
	}
	drain := in
	drain.operator = map[string]operatorRecord{"n050": {Op: NodeDraining}}
	out, err = reconcile(drain)
	if err != nil {
		t.Fatal(err)
	}
	if got, moves := len(slots(out.assign, "n050")), out.assign.incomingCount(); got != 0 || moves != len(held) {
		t.Fatalf("drain: n050 keeps %d slots and %d moves start, want 0 and %d", got, moves, len(held))
	}
}

// TestReconcileThrottleNeverHoldsFailover: with one move at a time, a
// leave still promotes a surviving replica of every partition the leaver
// served at once; only the new replicas wait.
func TestReconcileThrottleNeverHoldsFailover(t *testing.T) {
	in := settledInput(t, 5, 64)
	in.maxMoves = 1
	gone := "n002"
	in.members = maps.Clone(in.members)
	delete(in.members, gone)
	in.departed = map[string]departure{gone: {Record: memberRecord{ID: gone}, Reason: LeaveGraceful, At: in.now}}
	out, err := reconcile(in)
	if err != nil {
		t.Fatal(err)
	}
	if n := out.assign.incomingCount(); n != 1 {
		t.Fatalf("%d incoming handoffs, want 1 (MaxConcurrentMoves)", n)
	}
	for p, ps := range out.assign.Partitions {
		if len(ps.Serving) == 0 || slices.Contains(ps.Serving, gone) {
			t.Fatalf("partition %d serves %v: the leaver's primaries must fail over at once", p, ps.Serving)
		}
	}
	if out.rebalance == nil || !out.rebalance.running() {
		t.Fatalf("rebalance %+v, want it running while moves wait", out.rebalance)
	}
}
