package clusterkit

import (
	"slices"
	"testing"
	"time"
)

// delayed forms a settled map of ids (RF 2, 8 partitions) with a 30 s
// rebalance delay and automatic maintenance above half the nodes.
func delayed(t *testing.T, ids ...string) reconcileInput {
	t.Helper()
	m := members(ids...)
	for id, r := range m {
		r.Incarnation = 1
		m[id] = r
	}
	in, _ := apply(t, reconcileInput{cfg: testCfg, members: m, now: time.Unix(100, 0),
		delay: 30 * time.Second, maintShare: 0.5, maintWindow: 4 * time.Second})
	return in
}

// expire makes ids' leases expire at in.now.
func expire(in reconcileInput, ids ...string) reconcileInput {
	in.members = maps2(in.members)
	in.departed = map[string]departure{}
	for _, id := range ids {
		in.departed[id] = departure{Record: in.members[id], Reason: LeaveLeaseExpired, At: in.now}
		delete(in.members, id)
	}
	return in
}

func maps2(m map[string]memberRecord) map[string]memberRecord {
	out := make(map[string]memberRecord, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// served returns the partitions id serves, and those it is a Target of.
func roles(a *assignment, id string) (serving, target []int) {
	for p, ps := range a.Partitions {
		if slices.Contains(ps.Serving, id) {
			serving = append(serving, p)
		}
		if slices.Contains(ps.Target, id) {
			target = append(target, p)
		}
	}
	return serving, target
}

func TestReconcileDelayFailsOverAtOnceAndReservesSlots(t *testing.T) {
	in := delayed(t, "a", "b", "c")
	before := in.assign
	_, heldTarget := roles(before, "c")
	in.now = in.now.Add(time.Second)
	in = expire(in, "c")
	in, out := apply(t, in)
	for p, ps := range out.assign.Partitions {
		if slices.Contains(ps.Serving, "c") {
			t.Fatalf("partition %d: the away node still serves %v: no failover", p, ps.Serving)
		}
		if !slices.Equal(ps.Target, before.Partitions[p].Target) || len(ps.Incoming) != 0 {
			t.Fatalf("partition %d: target %v incoming %+v, want the old target and nothing placed", p, ps.Target, ps.Incoming)
		}
		if len(ps.Serving) == 0 {
			t.Fatalf("partition %d has no serving node", p)
		}
	}
	if i := slices.IndexFunc(out.assign.Planned, func(pn plannedNode) bool { return pn.ID == "c" }); i < 0 || !out.assign.Planned[i].away() {
		t.Fatalf("planned %+v, want c away", out.assign.Planned)
	}
	if want := in.now.Add(30 * time.Second); !out.wakeAt.Equal(want) {
		t.Fatalf("wakeAt %v, want %v", out.wakeAt, want)
	}
	if out.assign.Maintenance != nil {
		t.Fatalf("maintenance %+v after one of three nodes left", out.assign.Maintenance)
	}

	// Back within the delay, the same process: incoming for exactly its
	// old slots; nothing moves anywhere else.
	back := in
	back.now = in.now.Add(10 * time.Second)
	back.members = maps2(in.members)
	back.members["c"] = memberRecord{ID: "c", Weight: 1, State: memberActive, Healthy: true, Incarnation: 1}
	back.departed = nil
	back, out = apply(t, back)
	var gaining []int
	for p, ps := range out.assign.Partitions {
		if !slices.Equal(ps.Target, before.Partitions[p].Target) {
			t.Fatalf("partition %d: target changed to %v on a return within the delay", p, ps.Target)
		}
		for _, inc := range ps.Incoming {
			if inc.Node != "c" {
				t.Fatalf("partition %d: %s gains it on c's return", p, inc.Node)
			}
			gaining = append(gaining, p)
		}
	}
	if !slices.Equal(gaining, heldTarget) {
		t.Fatalf("c receives %v, want its old slots %v", gaining, heldTarget)
	}
	if out.rebalance == nil || out.rebalance.Trigger != ReasonNodeRejoin {
		t.Fatalf("rebalance %+v, want one triggered by the rejoin", out.rebalance)
	}
}

func TestReconcileDelayEndsThenReplicatesElsewhere(t *testing.T) {
	in := delayed(t, "a", "b", "c")
	in = expire(in, "c")
	in, _ = apply(t, in)
	in.departed = nil // a new leader that never saw the departure
	in.now = in.now.Add(29 * time.Second)
	if _, out := apply(t, in); !out.empty() {
		t.Fatalf("reconcile within the delay wrote %+v", out.assign)
	}
	in.now = in.now.Add(2 * time.Second)
	_, out := apply(t, in)
	if out.assign == nil {
		t.Fatal("nothing written after the delay ended")
	}
	moved := 0
	for p, ps := range out.assign.Partitions {
		if slices.Contains(ps.Target, "c") {
			t.Fatalf("partition %d: target %v still names c after its delay", p, ps.Target)
		}
		moved += len(ps.Incoming)
	}
	if moved == 0 || out.rebalance == nil || out.rebalance.Trigger != ReasonNodeLeave || out.rebalance.TriggerNodeID != "c" {
		t.Fatalf("%d incoming, rebalance %+v; want new replicas for c's slots, trigger node_leave c", moved, out.rebalance)
	}
}

func TestReconcileGracefulLeaveAndEndDelayReplicateAtOnce(t *testing.T) {
	in := delayed(t, "a", "b", "c")
	graceful := expire(in, "c")
	graceful.departed["c"] = departure{Reason: LeaveGraceful}
	if _, out := apply(t, graceful); out.assign == nil || slices.ContainsFunc(out.assign.Planned, plannedNode.away) {
		t.Fatalf("a graceful leave reserved slots: %+v", out.assign)
	}
	in = expire(in, "c")
	in, _ = apply(t, in)
	in.control = map[controlAction]controlRequest{actionEndDelay: {ID: "r1", At: in.now}}
	_, out := apply(t, in)
	if slices.ContainsFunc(out.assign.Planned, plannedNode.away) || out.assign.Served[actionEndDelay] != "r1" {
		t.Fatalf("after EndRebalanceDelay: planned %+v served %v, want no away node and r1 served", out.assign.Planned, out.assign.Served)
	}
}

func TestReconcileAwayHoldersKeepServingNoNoSource(t *testing.T) {
	in := delayed(t, "a", "b", "c")
	in.maintShare = 1 // no maintenance: the delay alone keeps them
	in = expire(in, "b", "c")
	_, out := apply(t, in)
	for p, ps := range out.assign.Partitions {
		before := in.assign.Partitions[p].Serving
		if !slices.Contains(before, "a") && !slices.Equal(ps.Serving, before) {
			t.Fatalf("partition %d held only by away nodes %v now serves %v (NoSource)", p, before, ps.Serving)
		}
	}
}

func TestReconcileMaintenanceFreezesPlacement(t *testing.T) {
	in := delayed(t, "a", "b", "c", "d")
	before := in.assign
	in = expire(in, "b", "c", "d")
	in, out := apply(t, in)
	if out.assign.Maintenance == nil || out.assign.Maintenance.Manual {
		t.Fatalf("maintenance %+v after 3 of 4 nodes left, want automatic", out.assign.Maintenance)
	}
	// Past the delay: still frozen, nothing placed, nothing without a source.
	in.now = in.now.Add(time.Hour)
	in.departed = nil
	if _, out := apply(t, in); !out.empty() {
		t.Fatalf("maintenance let placement change: %+v", out.assign)
	}
	for p, ps := range in.assign.Partitions {
		if !slices.Equal(ps.Target, before.Partitions[p].Target) || len(ps.Incoming) > 0 {
			t.Fatalf("partition %d: %+v changed placement in maintenance", p, ps)
		}
	}
	// All back: maintenance ends by itself.
	back := in
	back.members = maps2(before.membersForTest())
	_, out = apply(t, back)
	if out.assign.Maintenance != nil {
		t.Fatalf("maintenance %+v after every node came back", out.assign.Maintenance)
	}
}

// membersForTest rebuilds the member records a test map was planned for.
func (a *assignment) membersForTest() map[string]memberRecord {
	m := map[string]memberRecord{}
	for _, pn := range a.Planned {
		m[pn.ID] = memberRecord{ID: pn.ID, Weight: pn.Weight, State: memberActive, Healthy: true, Incarnation: pn.Incarnation}
	}
	return m
}

func TestReconcileManualMaintenanceLastsUntilTurnedOff(t *testing.T) {
	in := delayed(t, "a", "b", "c")
	in.control = map[controlAction]controlRequest{actionMaintenanceOn: {ID: "on1", At: in.now}}
	in, out := apply(t, in)
	if m := out.assign.Maintenance; m == nil || !m.Manual {
		t.Fatalf("maintenance %+v, want manual", m)
	}
	in.control = nil
	in.members = members("a", "b", "c", "d") // a join changes nothing while frozen
	for id, r := range in.members {
		r.Incarnation = 1
		in.members[id] = r
	}
	in, out = apply(t, in)
	if out.assign == nil || out.assign.Maintenance == nil || out.assign.incomingCount() != 0 {
		t.Fatalf("a join during manual maintenance: %+v", out.assign)
	}
	in.control = map[controlAction]controlRequest{actionMaintenanceOn: {ID: "on1", At: in.now},
		actionMaintenanceOff: {ID: "off1", At: in.now.Add(time.Second)}}
	in.assign.Served = map[controlAction]string{actionMaintenanceOn: "on1"}
	delete(in.control, actionMaintenanceOn)
	_, out = apply(t, in)
	if out.assign.Maintenance != nil || out.assign.incomingCount() == 0 {
		t.Fatalf("after turning maintenance off: maintenance %+v, %d incoming (want the join placed)", out.assign.Maintenance, out.assign.incomingCount())
	}
}

func TestReconcileDurableRestartKeepsTheOnlyCopy(t *testing.T) {
	cfg := testCfg
	cfg.ReplicationFactor = 1
	for _, durable := range []bool{false, true} {
		m := members("a", "b")
		for id, r := range m {
			r.Incarnation, r.Durable = 1, durable
			m[id] = r
		}
		in, _ := apply(t, reconcileInput{cfg: cfg, members: m, now: time.Unix(100, 0), delay: 30 * time.Second})
		held, _ := roles(in.assign, "b")
		r := in.members["b"]
		r.Incarnation = 2
		in.members = maps2(in.members)
		in.members["b"] = r
		_, out := apply(t, in)
		for _, p := range held {
			ps := out.assign.Partitions[p]
			if durable && (!slices.Equal(ps.Serving, []string{"b"}) || ps.Epoch != in.assign.Partitions[p].Epoch) {
				t.Fatalf("durable: partition %d now %+v, want b still serving it", p, ps)
			}
			if !durable && ps.Epoch == in.assign.Partitions[p].Epoch {
				t.Fatalf("not durable: partition %d %+v kept the restarted node's lost copy", p, ps)
			}
		}
	}
}
