package clusterkit

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/clusterkit-go/clusterkit/placement"
)

// reconcileInput is everything the leader decides from: etcd's state as the
// node's watch delivered it (never the leader's memory), the time, and a
// pending manual request.
type reconcileInput struct {
	cfg       clusterConfig
	members   map[string]memberRecord // live members
	ready     map[string]readyRecord
	assign    *assignment // nil before the first map
	rebalance *rebalanceRecord
	history   map[string]historyRecord
	// departed gives, for nodes whose member key was deleted, the reason
	// and last record (from the value they had before the delete).
	departed map[string]departure
	// manual is the request ID of a pending manual rebalance, "" if none;
	// manualNode is the node that asked.
	manual, manualNode string
	now                time.Time
}

// departure is what a node's watch saw when a member key was deleted.
type departure struct {
	Record memberRecord
	Reason LeaveReason
	At     time.Time
}

// reconcileOutput is what the leader writes in one fenced Txn; nil fields
// are left as they are. A zero output means there is nothing to do.
type reconcileOutput struct {
	assign    *assignment
	rebalance *rebalanceRecord
	history   map[string]historyRecord
	forget    []string // history records to delete
}

func (o reconcileOutput) empty() bool {
	return o.assign == nil && o.rebalance == nil && len(o.history) == 0 && len(o.forget) == 0
}

// reconcile computes the next assignment from the current one:
//
//   - it plans new Targets (placement.Plan, minimal movement from the old
//     Targets) when the live membership differs from the one the Targets
//     were planned for, or on a manual request;
//   - it drops dead nodes from every serving set at once, so a partition
//     whose primary died is served by a surviving replica (the planned
//     primary if it serves, else the first survivor);
//   - a Target node that does not serve is incoming until its ready record
//     names the partition with the same since-version; then it serves, and
//     once a partition has no incoming node its serving set becomes exactly
//     its Target (surplus replicas dropped, planned primary first);
//   - a partition with no surviving serving node serves its Target at once
//     (no source to copy from);
//   - the epoch of a partition grows whenever its serving set changes;
//   - the rebalance record starts when Targets change (or on a manual
//     request), absorbs further changes while it runs, and completes in the
//     same write that leaves no incoming node.
func reconcile(in reconcileInput) (reconcileOutput, error) {
	var out reconcileOutput
	if len(in.members) == 0 {
		return out, nil
	}
	P := in.cfg.PartitionCount
	planned := plannedOf(in.members)
	prev := in.assign
	if prev != nil && len(prev.Partitions) != P {
		return out, fmt.Errorf("assignment has %d partitions, config says %d", len(prev.Partitions), P)
	}
	// A member that registered anew (another incarnation) lost what it
	// served: it stays planned, but serves again only after a handoff.
	version := int64(1)
	oldParts := make([]partitionState, P)
	var restarted map[string]bool
	if prev != nil {
		version, oldParts = prev.Version+1, prev.Partitions
		restarted = restartedSince(prev.Planned, func(id string) (int64, bool) {
			m, ok := in.members[id]
			return m.Incarnation, ok
		})
	}
	targets, err := planTargets(in, oldParts, planned)
	if err != nil {
		return out, err
	}
	next := &assignment{Version: version, Planned: planned, Partitions: make([]partitionState, P)}
	st := nextPartitions(next, oldParts, targets, in, restarted)
	changed := st.changed || prev == nil || !slices.Equal(prev.Planned, planned)
	rb := in.rebalance
	if st.targetChanged || in.manual != "" || len(restarted) > 0 {
		rb = startOrExtend(rb, in, prev, st)
	}
	if rb.running() && next.incomingCount() == 0 {
		if rb == in.rebalance {
			rb = cloneRebalance(rb)
		}
		rb.CompletedAt = in.now
	}
	if rb != in.rebalance {
		out.rebalance = rb
		changed = true
	}
	if !changed {
		return reconcileOutput{}, nil
	}
	out.assign = next
	if prev != nil {
		out.history, out.forget = departures(in, prev.Planned, oldParts)
	}
	return out, nil
}

// planTargets returns every partition's Target: placement.Plan's, with
// minimal movement from the old Targets, when the live membership differs
// from the one they were planned for (or on a manual request); else the
// old Targets.
func planTargets(in reconcileInput, oldParts []partitionState, planned []plannedNode) ([][]string, error) {
	prev := in.assign
	targets := make([][]string, len(oldParts))
	if prev != nil && slices.Equal(prev.Planned, planned) && in.manual == "" {
		for p, ps := range oldParts {
			targets[p] = ps.Target
		}
		return targets, nil
	}
	var prevPlan *placement.Assignment
	if prev != nil {
		prevPlan = &placement.Assignment{Replicas: make([][]string, len(oldParts))}
		for p, ps := range oldParts {
			prevPlan.Replicas[p] = ps.Target
		}
	}
	nodes := make([]placement.Node, len(planned))
	for i, n := range planned {
		nodes[i] = placement.Node{ID: n.ID, Zone: n.Zone, Weight: n.Weight}
	}
	plan, err := placement.Plan(prevPlan, nodes, len(oldParts), in.cfg.ReplicationFactor)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return plan.Replicas, nil
}

// partitionsStep is what nextPartitions found.
type partitionsStep struct {
	changed       bool            // some partition's state changed
	targetChanged bool            // some partition's Target changed
	newMoves      int             // (partition, node) pairs incoming since this version
	affected      map[string]bool // nodes that gained or lost a Target slot
}

// nextPartitions fills next.Partitions from the old ones and the targets.
func nextPartitions(next *assignment, oldParts []partitionState, targets [][]string, in reconcileInput, restarted map[string]bool) partitionsStep {
	st := partitionsStep{affected: map[string]bool{}}
	for p, old := range oldParts {
		target := targets[p]
		if !slices.Equal(target, old.Target) {
			st.targetChanged = true
			for _, n := range symmetricDiff(old.Target, target) {
				st.affected[n] = true
			}
		}
		ps := nextPartition(old, target, in.members, restarted, in.ready, p, next.Version)
		for _, inc := range ps.Incoming {
			if inc.Since == next.Version {
				st.newMoves++
			}
		}
		if !partitionEqual(ps, old) {
			st.changed = true
		}
		next.Partitions[p] = ps
	}
	return st
}

// startOrExtend starts a rebalance record, or extends the running one with
// this round's moves and affected nodes.
func startOrExtend(rb *rebalanceRecord, in reconcileInput, prev *assignment, st partitionsStep) *rebalanceRecord {
	if rb.running() {
		rb = cloneRebalance(rb)
		rb.Moves += st.newMoves
		if in.manual != "" {
			rb.RequestID, rb.LastRequestID = in.manual, in.manual
		}
	} else {
		id, last := int64(1), ""
		if rb != nil {
			id, last = rb.ID+1, rb.LastRequestID
		}
		if in.manual != "" {
			last = in.manual
		}
		trigger, triggerNode := triggerOf(prev, slices.Sorted(maps.Keys(in.members)), in)
		rb = &rebalanceRecord{ID: id, Trigger: trigger, TriggerNodeID: triggerNode, RequestID: in.manual,
			LastRequestID: last, Moves: st.newMoves, StartedAt: in.now}
	}
	for n := range st.affected {
		if !slices.Contains(rb.NodesAffected, n) {
			rb.NodesAffected = append(rb.NodesAffected, n)
		}
	}
	slices.Sort(rb.NodesAffected)
	return rb
}

// departures returns the history records of nodes planned for before but
// no longer alive (so that a return is reported as a rejoin), and the
// histories to forget (an admin removal ends a node's history).
func departures(in reconcileInput, before []plannedNode, oldParts []partitionState) (map[string]historyRecord, []string) {
	var history map[string]historyRecord
	var forget []string
	for _, pn := range before {
		if _, ok := in.members[pn.ID]; ok {
			continue
		}
		h := historyRecord{LastSeen: in.now, Reason: LeaveLeaseExpired, Incarnation: pn.Incarnation,
			Node: memberRecord{ID: pn.ID, Zone: pn.Zone, Weight: pn.Weight}}
		if d, ok := in.departed[pn.ID]; ok {
			h.Node, h.Reason, h.LastSeen, h.Incarnation = d.Record, d.Reason, d.At, d.Record.Incarnation
		}
		if h.Reason == LeaveRemovedByAdmin {
			// If it comes back, it joins as a new node.
			forget = append(forget, pn.ID)
			continue
		}
		for p, ps := range oldParts {
			switch i := slices.Index(ps.Serving, pn.ID); {
			case i == 0:
				h.Primaries = append(h.Primaries, p)
			case i > 0:
				h.Replicas = append(h.Replicas, p)
			}
		}
		if history == nil {
			history = map[string]historyRecord{}
		}
		history[pn.ID] = h
	}
	return history, forget
}

// nextPartition applies the serving-set rules of reconcile to one partition.
func nextPartition(old partitionState, target []string, members map[string]memberRecord, restarted map[string]bool,
	ready map[string]readyRecord, p int, version int64) partitionState {
	ps := partitionState{Target: target, Epoch: old.Epoch}
	var serving []string
	for _, n := range old.Serving {
		if _, ok := members[n]; ok && !restarted[n] {
			serving = append(serving, n)
		}
	}
	oldSince := make(map[string]int64, len(old.Incoming))
	for _, in := range old.Incoming {
		if !restarted[in.Node] {
			oldSince[in.Node] = in.Since
		}
	}
	for _, n := range target {
		if slices.Contains(serving, n) {
			continue
		}
		since, wasIncoming := oldSince[n]
		if !wasIncoming {
			since = version
		}
		if wasIncoming && ready[n][p] == since {
			serving = append(serving, n)
			continue
		}
		ps.Incoming = append(ps.Incoming, incoming{Node: n, Since: since})
	}
	switch {
	case len(serving) == 0:
		// No surviving source: the planned nodes serve at once.
		serving = slices.Clone(target)
		ps.Incoming = nil
	case len(ps.Incoming) == 0:
		serving = slices.Clone(target)
	default:
		serving = orderServing(serving, target, old.Serving)
	}
	ps.Serving = serving
	if !slices.Equal(serving, old.Serving) {
		ps.Epoch++
	}
	return ps
}

// orderServing puts the primary first: the planned primary if it serves,
// else the old primary if it still serves, else the first server in target
// order. The others keep their order.
func orderServing(serving, target, oldServing []string) []string {
	primary := ""
	switch {
	case len(target) > 0 && slices.Contains(serving, target[0]):
		primary = target[0]
	case len(oldServing) > 0 && slices.Contains(serving, oldServing[0]):
		primary = oldServing[0]
	default:
		for _, n := range target {
			if slices.Contains(serving, n) {
				primary = n
				break
			}
		}
		if primary == "" {
			primary = serving[0]
		}
	}
	out := make([]string, 0, len(serving))
	out = append(out, primary)
	for _, n := range serving {
		if n != primary {
			out = append(out, n)
		}
	}
	return out
}

// triggerOf names what caused a rebalance.
func triggerOf(prev *assignment, alive []string, in reconcileInput) (trigger ChangeReason, node string) {
	if in.manual != "" {
		return ReasonManual, in.manualNode
	}
	if prev == nil {
		return ReasonNodeJoin, alive[0]
	}
	was := map[string]plannedNode{}
	for _, pn := range prev.Planned {
		was[pn.ID] = pn
		if _, ok := in.members[pn.ID]; !ok && node == "" {
			trigger, node = ReasonNodeLeave, pn.ID
		}
	}
	if node != "" {
		return trigger, node
	}
	for _, id := range alive {
		if _, ok := was[id]; !ok {
			if _, ok := in.history[id]; ok {
				return ReasonNodeRejoin, id
			}
			return ReasonNodeJoin, id
		}
	}
	// Same members: one came back (a new incarnation), maybe with another
	// zone or weight.
	for _, id := range alive {
		m := in.members[id]
		if pn := was[id]; pn.Zone != m.Zone || pn.Weight != m.Weight || pn.Incarnation != m.Incarnation {
			return ReasonNodeRejoin, id
		}
	}
	return ReasonManual, ""
}

func partitionEqual(a, b partitionState) bool {
	return a.Epoch == b.Epoch && slices.Equal(a.Target, b.Target) && slices.Equal(a.Serving, b.Serving) &&
		slices.Equal(a.Incoming, b.Incoming)
}

func cloneRebalance(r *rebalanceRecord) *rebalanceRecord {
	c := *r
	c.NodesAffected = slices.Clone(r.NodesAffected)
	return &c
}

// symmetricDiff returns the IDs in exactly one of a and b.
func symmetricDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}
