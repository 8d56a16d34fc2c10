package clusterkit

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

func members(ids ...string) map[string]memberRecord {
	m := map[string]memberRecord{}
	for _, id := range ids {
		m[id] = memberRecord{ID: id, Weight: 1, State: memberActive, Healthy: true}
	}
	return m
}

var testCfg = clusterConfig{FormatVersion: 1, PartitionCount: 8, ReplicationFactor: 2, Hash: "xxhash64"}

// apply runs reconcile and returns the next input (as if the write landed).
func apply(t *testing.T, in reconcileInput) (reconcileInput, reconcileOutput) {
	t.Helper()
	out, err := reconcile(in)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	next := in
	if out.assign != nil {
		next.assign = out.assign
	}
	if out.rebalance != nil {
		next.rebalance = out.rebalance
	}
	if len(out.history) > 0 {
		next.history = map[string]historyRecord{}
		for k, v := range in.history {
			next.history[k] = v
		}
		for k, v := range out.history {
			next.history[k] = v
		}
	}
	next.manual = ""
	return next, out
}

func TestReconcileFirstMapServesAtOnce(t *testing.T) {
	in := reconcileInput{cfg: testCfg, members: members("a", "b"), now: time.Unix(100, 0)}
	next, out := apply(t, in)
	if out.assign == nil || out.rebalance == nil {
		t.Fatalf("first reconcile wrote assign %v rebalance %v, want both", out.assign != nil, out.rebalance != nil)
	}
	for p, ps := range out.assign.Partitions {
		if !slices.Equal(ps.Serving, ps.Target) || len(ps.Incoming) != 0 || ps.Epoch != 1 || len(ps.Serving) != 2 {
			t.Fatalf("partition %d: %+v, want serving = target of 2, no incoming, epoch 1", p, ps)
		}
	}
	if rb := out.rebalance; rb.running() || rb.Trigger != ReasonNodeJoin || rb.ID != 1 {
		t.Fatalf("rebalance %+v, want completed #1 with trigger node_join", rb)
	}
	if _, again := apply(t, next); !again.empty() {
		t.Fatalf("reconcile of a settled state wrote %+v, want nothing", again)
	}
}

func TestReconcileJoinHandsOffThenDropsSurplus(t *testing.T) {
	in, _ := apply(t, reconcileInput{cfg: testCfg, members: members("a", "b"), now: time.Unix(100, 0)})
	before := in.assign
	in.members = members("a", "b", "c")
	in, out := apply(t, in)
	if !out.rebalance.running() || out.rebalance.Trigger != ReasonNodeJoin || out.rebalance.TriggerNodeID != "c" {
		t.Fatalf("rebalance %+v, want running, node_join by c", out.rebalance)
	}
	moving := 0
	for p, ps := range out.assign.Partitions {
		if !slices.Equal(ps.Serving, before.Partitions[p].Serving) || ps.Epoch != before.Partitions[p].Epoch {
			t.Fatalf("partition %d: serving changed to %v before any handoff", p, ps.Serving)
		}
		for _, inc := range ps.Incoming {
			if inc.Node != "c" || inc.Since != out.assign.Version {
				t.Fatalf("partition %d: incoming %+v, want c since %d", p, inc, out.assign.Version)
			}
			moving++
		}
	}
	if moving == 0 || out.rebalance.Moves != moving {
		t.Fatalf("%d partitions incoming, rebalance says %d moves", moving, out.rebalance.Moves)
	}
	// A stale ready entry (other since) changes nothing.
	stale := readyRecord{}
	for p, ps := range in.assign.Partitions {
		if len(ps.Incoming) > 0 {
			stale[p] = ps.Incoming[0].Since - 1
		}
	}
	in.ready = map[string]readyRecord{"c": stale}
	if _, out := apply(t, in); !out.empty() {
		t.Fatalf("stale ready entries changed the map: %+v", out.assign)
	}
	// c becomes ready for everything: serving = target, surplus dropped.
	ready := readyRecord{}
	for p, ps := range in.assign.Partitions {
		if len(ps.Incoming) > 0 {
			ready[p] = ps.Incoming[0].Since
		}
	}
	in.ready = map[string]readyRecord{"c": ready}
	_, out = apply(t, in)
	for p, ps := range out.assign.Partitions {
		if !slices.Equal(ps.Serving, ps.Target) || len(ps.Incoming) != 0 {
			t.Fatalf("partition %d after ready: %+v, want serving = target", p, ps)
		}
		if _, moved := ready[p]; moved && ps.Epoch != before.Partitions[p].Epoch+1 {
			t.Fatalf("partition %d: epoch %d, want %d", p, ps.Epoch, before.Partitions[p].Epoch+1)
		}
	}
	if out.rebalance == nil || out.rebalance.running() {
		t.Fatalf("rebalance %+v, want completed", out.rebalance)
	}
}

func TestReconcileLeavePromotesSurvivorAtOnce(t *testing.T) {
	in, _ := apply(t, reconcileInput{cfg: testCfg, members: members("a", "b", "c"), now: time.Unix(100, 0)})
	before := in.assign
	in.members = members("a", "b")
	in.departed = map[string]departure{"c": {Record: memberRecord{ID: "c", Incarnation: 7}, Reason: LeaveGraceful, At: time.Unix(200, 0)}}
	_, out := apply(t, in)
	held := 0
	for p, ps := range out.assign.Partitions {
		old := before.Partitions[p].Serving
		if !slices.Contains(old, "c") {
			continue
		}
		held++
		if slices.Contains(ps.Serving, "c") {
			t.Fatalf("partition %d still served by the leaver: %v", p, ps.Serving)
		}
		if old[0] == "c" && !slices.Contains(old, ps.Serving[0]) {
			t.Fatalf("partition %d: new primary %s did not hold the data (%v)", p, ps.Serving[0], old)
		}
	}
	h, ok := out.history["c"]
	if !ok || h.Reason != LeaveGraceful || h.Incarnation != 7 || len(h.Primaries)+len(h.Replicas) != held {
		t.Fatalf("history %+v, want graceful, incarnation 7, %d partitions", h, held)
	}
	if out.rebalance.Trigger != ReasonNodeLeave || out.rebalance.TriggerNodeID != "c" {
		t.Fatalf("rebalance %+v, want node_leave by c", out.rebalance)
	}
}

func TestReconcileNoSourceServesTargetAtOnce(t *testing.T) {
	cfg := testCfg
	cfg.ReplicationFactor = 1
	in, _ := apply(t, reconcileInput{cfg: cfg, members: members("a", "b"), now: time.Unix(100, 0)})
	in.members = members("b", "c")
	_, out := apply(t, in)
	for p, ps := range out.assign.Partitions {
		if len(ps.Serving) != 1 || len(ps.Incoming) != 0 {
			t.Fatalf("partition %d: %+v, want one serving node and none incoming", p, ps)
		}
	}
}

func TestReconcileManualRequest(t *testing.T) {
	in, _ := apply(t, reconcileInput{cfg: testCfg, members: members("a", "b"), now: time.Unix(100, 0)})
	in.manual, in.manualNode = "req-1", "b"
	_, out := apply(t, in)
	if out.rebalance == nil || out.rebalance.Trigger != ReasonManual || out.rebalance.RequestID != "req-1" || out.rebalance.running() {
		t.Fatalf("manual rebalance record %+v, want a completed manual one with request req-1", out.rebalance)
	}
}

func TestAssignmentEncodingRoundTripsAndFitsEtcd(t *testing.T) {
	const P, N = 16384, 1000
	a := &assignment{Version: 9, Partitions: make([]partitionState, P)}
	for i := range N {
		a.Planned = append(a.Planned, plannedNode{ID: fmt.Sprintf("node-%04d", i), Weight: 1})
	}
	for p := range P {
		ids := []string{a.Planned[p%N].ID, a.Planned[(p+1)%N].ID, a.Planned[(p+2)%N].ID}
		a.Partitions[p] = partitionState{Target: ids, Serving: ids, Epoch: uint64(p)}
		if p%7 == 0 {
			a.Partitions[p].Incoming = []incoming{{Node: ids[0], Since: 3}}
		}
	}
	b, err := a.marshal()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("16,384 partitions × RF 3 × 1,000 nodes: %d bytes", len(b))
	if len(b) > maxAssignmentBytes {
		t.Fatalf("encoded assignment is %d bytes, over %d", len(b), maxAssignmentBytes)
	}
	got, err := unmarshalAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	for p := range P {
		if !partitionEqual(got.Partitions[p], a.Partitions[p]) {
			t.Fatalf("partition %d: got %+v, want %+v", p, got.Partitions[p], a.Partitions[p])
		}
	}
	if _, err := unmarshalAssignment([]byte(`{"nodes":["a"],"p":[{"t":[3],"s":[0]}]}`)); err == nil {
		t.Fatal("an out-of-range node index decoded without error")
	}
}

func TestReconcileManualRequestIsServedOnce(t *testing.T) {
	in, _ := apply(t, reconcileInput{cfg: testCfg, members: members("a", "b", "c"), now: time.Unix(100, 0)})
	in.manual, in.manualNode = "req-1", "b"
	in, out := apply(t, in)
	if out.rebalance.LastRequestID != "req-1" {
		t.Fatalf("manual rebalance %+v does not record the request", out.rebalance)
	}
	// The request key stays in etcd; a later leave must not serve it again.
	in.members = members("a", "b")
	in.manual = "" // what view.pendingManual says now: req-1 is LastRequestID
	_, out = apply(t, in)
	if out.rebalance.Trigger != ReasonNodeLeave || out.rebalance.LastRequestID != "req-1" {
		t.Fatalf("after a leave: rebalance %+v, want node_leave that still remembers req-1", out.rebalance)
	}
	v := &view{request: &rebalanceRequest{ID: "req-1"}, rebalance: out.rebalance}
	if v.pendingManual() != nil {
		t.Fatal("a served manual request is pending again")
	}
}

func TestReconcileRestartedNodeIsHandedOffAgain(t *testing.T) {
	m := members("a", "b", "c")
	for id, r := range m {
		r.Incarnation = 1
		m[id] = r
	}
	in, _ := apply(t, reconcileInput{cfg: testCfg, members: m, now: time.Unix(100, 0)})
	before := in.assign
	restarted := maps.Clone(m)
	r := restarted["c"]
	r.Incarnation = 2
	restarted["c"] = r
	in.members = restarted
	_, out := apply(t, in)
	if out.rebalance == nil || out.rebalance.Trigger != ReasonNodeRejoin || out.rebalance.TriggerNodeID != "c" {
		t.Fatalf("rebalance %+v, want node_rejoin by c", out.rebalance)
	}
	held := 0
	for p, ps := range out.assign.Partitions {
		if !slices.Contains(before.Partitions[p].Serving, "c") {
			continue
		}
		held++
		if slices.Contains(ps.Serving, "c") {
			t.Fatalf("partition %d: the restarted node still serves (%v) without a handoff", p, ps.Serving)
		}
		if len(ps.Incoming) != 1 || ps.Incoming[0].Node != "c" {
			t.Fatalf("partition %d: incoming %+v, want c", p, ps.Incoming)
		}
	}
	if held == 0 {
		t.Fatal("c served nothing; the test proves nothing")
	}
}

func TestReconcileAdminRemovalForgetsHistory(t *testing.T) {
	in, _ := apply(t, reconcileInput{cfg: testCfg, members: members("a", "b", "c"), now: time.Unix(100, 0)})
	in.members = members("a", "b")
	in.departed = map[string]departure{"c": {Record: memberRecord{ID: "c"}, Reason: LeaveRemovedByAdmin, At: time.Unix(200, 0)}}
	_, out := apply(t, in)
	if _, ok := out.history["c"]; ok || !slices.Equal(out.forget, []string{"c"}) {
		t.Fatalf("history %v, forget %v; want no history and c forgotten", out.history, out.forget)
	}
}
