package clusterkit

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/clusterkit-go/clusterkit/placement"
)

// reconcileInput is everything the leader decides from: etcd's state as the
// node's watch delivered it (never the leader's memory), the time, pending
// operator requests and the leader's placement options.
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
	// control holds the operator requests not applied yet.
	control map[controlAction]controlRequest
	// operator holds the operator records (cordon, drain) by node.
	operator map[string]operatorRecord
	// maxMoves and maxMovesPerNode are Options.MaxConcurrentMoves and
	// MaxConcurrentMovesPerNode (0: unlimited).
	maxMoves, maxMovesPerNode int
	// delay is Options.RebalanceDelay (zero or negative: none);
	// maintShare and maintWindow are Options.Maintenance (share 0: never).
	delay       time.Duration
	maintShare  float64
	maintWindow time.Duration
	now         time.Time
}

// departure is what a node's watch saw when a member key was deleted.
type departure struct {
	Record memberRecord
	Reason LeaveReason
	At     time.Time
}

// reconcileOutput is what the leader writes in one fenced Txn; nil fields
// are left as they are. wakeAt, when set, is when the leader must
// reconcile again although nothing changes (a reserved slot's delay ends);
// it is not written.
type reconcileOutput struct {
	assign    *assignment
	rebalance *rebalanceRecord
	history   map[string]historyRecord
	forget    []string // history records to delete
	wakeAt    time.Time
}

func (o reconcileOutput) empty() bool {
	return o.assign == nil && o.rebalance == nil && len(o.history) == 0 && len(o.forget) == 0
}

// reconcile computes the next assignment from the current one:
//
//   - the planned nodes are the live members and the away ones: nodes
//     whose lease expired less than the rebalance delay ago (or at any
//     time while maintenance lasts); their Target slots stay reserved.
//     Graceful leaves and admin removals are dropped at once;
//   - it plans new Targets (placement.Plan, minimal movement from the old
//     Targets) when the planned nodes differ from the ones the Targets
//     were planned for (not during maintenance), or on a manual request;
//   - a node that is not a member, or runs a new process that lost its
//     data (not durable), leaves every serving set at once, so a
//     partition whose primary left is served by a surviving replica (the
//     planned primary if it serves, else the old primary, else the first
//     survivor). When none survives, the away holders and restarted
//     durable holders stay in the serving set: the data still lives;
//   - a live Target node that does not serve is incoming until its ready
//     record names the partition with the same since-version; then it
//     serves, and once a partition has no incoming node its serving set
//     becomes its serving Target nodes (surplus replicas dropped, planned
//     primary first);
//   - a partition with no holder alive or away serves its live Target
//     nodes at once (no source to copy from);
//   - the epoch of a partition grows whenever its serving set changes;
//   - the rebalance record starts when Targets change, a node gains a
//     partition, a node leaves or on a manual request; it absorbs further
//     changes while it runs, and completes in the same write that leaves
//     no incoming node;
//   - maintenance mode begins when more than maintShare of the planned
//     nodes left within maintWindow (or by request) and, unless an
//     operator began it, ends when no node is away.
func reconcile(in reconcileInput) (reconcileOutput, error) {
	var out reconcileOutput
	if len(in.members) == 0 {
		return out, nil
	}
	P := in.cfg.PartitionCount
	prev := in.assign
	if prev != nil && len(prev.Partitions) != P {
		return out, fmt.Errorf("assignment has %d partitions, config says %d", len(prev.Partitions), P)
	}
	version := int64(1)
	oldParts := make([]partitionState, P)
	var oldPlanned []plannedNode
	var maint *maintenanceState
	var served map[controlAction]string
	if prev != nil {
		version, oldParts, oldPlanned, maint, served = prev.Version+1, prev.Partitions, prev.Planned, prev.Maintenance, prev.Served
	}
	maint, served, endDelay := applyControl(in, maint, served)
	planned, maint, newlyAway := plannedNodes(in, oldPlanned, maint, endDelay)
	// A member that runs a new process lost what it served (unless
	// durable): it stays planned, but serves again only after a handoff.
	restarted := map[string]bool{}
	lost := lostData(oldPlanned, func(id string) (int64, bool, bool) {
		m, ok := in.members[id]
		return m.Incarnation, m.Durable, ok
	}, restarted)
	// Targets are frozen in maintenance; when it ends they are planned
	// for the nodes there are then.
	replan := prev == nil || in.manual != "" ||
		(maint == nil && (prev.Maintenance != nil || !samePlacement(oldPlanned, planned) || !sameDraining(oldPlanned, planned)))
	targets, err := planTargets(in, oldParts, planned, replan)
	if err != nil {
		return out, err
	}
	cancelHandoffs(targets, oldParts, handoffCancels(in.control, P))
	next := &assignment{Version: version, Planned: planned, Partitions: make([]partitionState, P),
		Maintenance: maint, Served: served}
	st := nextPartitions(next, oldParts, targets, in, restarted, lost)
	changed := st.changed || prev == nil || !samePlanned(oldPlanned, planned) ||
		!sameMaintenance(prev.Maintenance, maint) || !maps.Equal(prev.Served, served)
	rb := in.rebalance
	if st.targetChanged || in.manual != "" || st.newMoves > 0 || newlyAway > 0 {
		rb = startOrExtend(rb, in, prev, st)
	}
	if rb.running() && next.incomingCount() == 0 && st.waiting == 0 {
		if rb == in.rebalance {
			rb = cloneRebalance(rb)
		}
		rb.CompletedAt = in.now
	}
	if rb != in.rebalance {
		out.rebalance = rb
		changed = true
	}
	out.wakeAt = delayEnd(planned, maint, in.delay)
	if !changed {
		return reconcileOutput{wakeAt: out.wakeAt}, nil
	}
	out.assign = next
	if prev != nil {
		out.history, out.forget = departures(in, prev.Planned, oldParts)
	}
	return out, nil
}

// applyControl applies the pending operator requests, oldest first, and
// returns the maintenance state, the served request IDs and whether the
// rebalance delay ends now.
func applyControl(in reconcileInput, maint *maintenanceState, served map[controlAction]string) (*maintenanceState, map[controlAction]string, bool) {
	if len(in.control) == 0 {
		return maint, served, false
	}
	served = maps.Clone(served)
	if served == nil {
		served = map[controlAction]string{}
	}
	actions := slices.SortedFunc(maps.Keys(in.control), func(a, b controlAction) int {
		return in.control[a].At.Compare(in.control[b].At)
	})
	endDelay := false
	for _, a := range actions {
		req := in.control[a]
		served[a] = req.ID
		switch a {
		case actionMaintenanceOn:
			maint = &maintenanceState{Since: in.now, Manual: true, Reason: "turned on by an operator (" + req.Node + ")"}
		case actionMaintenanceOff:
			maint = nil
		case actionEndDelay:
			endDelay = true
		}
	}
	return maint, served, endDelay
}

// plannedNodes returns the nodes to plan for (live members and away ones,
// sorted by ID), the maintenance state after this round, and how many
// nodes became away in it.
func plannedNodes(in reconcileInput, oldPlanned []plannedNode, maint *maintenanceState, endDelay bool) ([]plannedNode, *maintenanceState, int) {
	planned := plannedOf(in.members)
	// Candidates to stay away: planned before, not members now, left by
	// lease expiry.
	var away []plannedNode
	newly, recent := 0, 0
	for _, pn := range oldPlanned {
		if _, live := in.members[pn.ID]; live {
			continue
		}
		if d, ok := in.departed[pn.ID]; ok && d.Reason != LeaveLeaseExpired {
			continue
		}
		if !pn.away() {
			pn.AwaySince = in.now
			newly++
		}
		if in.now.Sub(pn.AwaySince) <= in.maintWindow {
			recent++
		}
		away = append(away, pn)
	}
	total := len(planned) + len(away)
	if maint == nil && newly > 0 && in.maintShare > 0 && float64(recent) > in.maintShare*float64(total) {
		maint = &maintenanceState{Since: in.now,
			Reason: fmt.Sprintf("%d of %d nodes left within %v", recent, total, in.maintWindow)}
	}
	kept := 0
	for _, pn := range away {
		reserved := maint != nil || (in.delay >= 0 && in.now.Before(pn.AwaySince.Add(in.delay)))
		if endDelay || !reserved {
			continue
		}
		planned = append(planned, pn)
		kept++
	}
	if maint != nil && !maint.Manual && kept == 0 {
		maint = nil // every node that left is back (or given up)
	}
	slices.SortFunc(planned, func(a, b plannedNode) int { return strings.Compare(a.ID, b.ID) })
	for i := range planned {
		planned[i].Op = in.operator[planned[i].ID].Op
	}
	return planned, maint, newly
}

// delayEnd returns when the first reserved slot's delay ends (zero: none,
// or maintenance holds them).
func delayEnd(planned []plannedNode, maint *maintenanceState, delay time.Duration) time.Time {
	var at time.Time
	if maint != nil || delay < 0 {
		return at
	}
	for _, pn := range planned {
		if end := pn.AwaySince.Add(delay); pn.away() && (at.IsZero() || end.Before(at)) {
			at = end
		}
	}
	return at
}

// samePlanned compares two planned lists, away times included.
func samePlanned(a, b []plannedNode) bool {
	return slices.EqualFunc(a, b, func(x, y plannedNode) bool {
		return sameNode(x, y) && x.Durable == y.Durable && x.AwaySince.Equal(y.AwaySince) && x.Op == y.Op
	})
}

func sameMaintenance(a, b *maintenanceState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Manual == b.Manual && a.Since.Equal(b.Since) && a.Reason == b.Reason
}

// planTargets returns every partition's Target: placement.Plan's, with
// minimal movement from the old Targets, when replan; else the old
// Targets.
func planTargets(in reconcileInput, oldParts []partitionState, planned []plannedNode, replan bool) ([][]string, error) {
	prev := in.assign
	targets := make([][]string, len(oldParts))
	if !replan {
		for p, ps := range oldParts {
			targets[p] = ps.Target
		}
		return targets, nil
	}
	var prevPlan *placement.Assignment
	var prior [][]string
	if prev != nil {
		prior = priorTargets(oldParts, prev.Planned, planned)
		prevPlan = &placement.Assignment{Replicas: prior}
	}
	plan, err := placement.Plan(prevPlan, placementNodes(planned), len(oldParts), in.cfg.ReplicationFactor)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	keepCordoned(plan.Replicas, prior, planned)
	return plan.Replicas, nil
}

// partitionsStep is what nextPartitions found.
type partitionsStep struct {
	changed       bool            // some partition's state changed
	targetChanged bool            // some partition's Target changed
	newMoves      int             // (partition, node) pairs incoming since this version
	affected      map[string]bool // nodes that gained or lost a Target slot
	waiting       int             // moves held back by the move limits
}

// nextPartitions fills next.Partitions from the old ones and the targets.
func nextPartitions(next *assignment, oldParts []partitionState, targets [][]string, in reconcileInput, restarted, lost map[string]bool) partitionsStep {
	away := map[string]bool{}
	for _, pn := range next.Planned {
		if pn.away() {
			away[pn.ID] = true
		}
	}
	nodes := partitionNodes{members: in.members, away: away, restarted: restarted, lost: lost,
		budget: newMoveBudget(in.maxMoves, in.maxMovesPerNode)}
	nodes.budget.countContinuing(oldParts, targets, nodes, in.ready)
	st := partitionsStep{affected: map[string]bool{}}
	for p, old := range oldParts {
		target := targets[p]
		if !slices.Equal(target, old.Target) {
			st.targetChanged = true
			for _, n := range symmetricDiff(old.Target, target) {
				st.affected[n] = true
			}
		}
		ps := nextPartition(old, target, nodes, in.ready, p, next.Version)
		for _, inc := range ps.Incoming {
			if inc.Since == next.Version {
				st.newMoves++
			}
		}
		if !partitionEqual(ps, old) {
			st.changed = true
		}
		st.waiting += waitingMoves(ps, nodes)
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
		if _, ok := in.members[pn.ID]; ok || pn.away() {
			continue // live, or its history was written when it left
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

// partitionNodes is what nextPartition knows about nodes.
type partitionNodes struct {
	members   map[string]memberRecord
	away      map[string]bool // planned, lease expired, slots reserved
	restarted map[string]bool // members that run a new process
	lost      map[string]bool // restarted without durable storage
	budget    *moveBudget     // new handoffs this round may admit (nil: all)
}

func (n partitionNodes) live(id string) bool { _, ok := n.members[id]; return ok }

// nextPartition applies the serving-set rules of reconcile to one partition.
func nextPartition(old partitionState, target []string, nodes partitionNodes, ready map[string]readyRecord, p int, version int64) partitionState {
	ps := partitionState{Target: target, Epoch: old.Epoch}
	// Live holders of the current data.
	var serving []string
	for _, n := range old.Serving {
		if nodes.live(n) && !nodes.restarted[n] {
			serving = append(serving, n)
		}
	}
	if len(serving) == 0 {
		// No live holder of the current data: keep the nodes that may still
		// hold it (away within their delay, restarted with durable storage).
		for _, n := range old.Serving {
			if nodes.away[n] || (nodes.live(n) && !nodes.lost[n]) {
				serving = append(serving, n)
			}
		}
	}
	held := false // a Target node's move is held back by the limits
	oldSince := make(map[string]int64, len(old.Incoming))
	for _, in := range old.Incoming {
		if !nodes.restarted[in.Node] {
			oldSince[in.Node] = in.Since
		}
	}
	for _, n := range target {
		if slices.Contains(serving, n) || !nodes.live(n) {
			continue // serving, or away: its slot waits
		}
		since, wasIncoming := oldSince[n]
		if wasIncoming && ready[n][p] == since {
			serving = append(serving, n)
			continue
		}
		if !wasIncoming {
			if !nodes.budget.admit(n) {
				held = true // waits for a move to complete
				continue
			}
			since = version
		}
		ps.Incoming = append(ps.Incoming, incoming{Node: n, Since: since})
	}
	inTarget := slices.DeleteFunc(slices.Clone(target), func(n string) bool { return !slices.Contains(serving, n) })
	switch {
	case len(serving) == 0:
		// No holder anywhere: the live planned nodes serve at once.
		serving = slices.DeleteFunc(slices.Clone(target), func(n string) bool { return !nodes.live(n) })
		ps.Incoming = nil
		if len(serving) == 0 {
			serving = slices.Clone(old.Serving) // nothing better to name
		}
	case len(ps.Incoming) == 0 && !held && len(inTarget) > 0:
		serving = inTarget // surplus dropped, in Target order
	default:
		serving = orderServing(serving, target, old.Serving)
	}
	ps.Serving = serving
	// A new epoch when the servers change, or one of them lost the data.
	if !slices.Equal(serving, old.Serving) || slices.ContainsFunc(serving, func(n string) bool { return nodes.lost[n] }) {
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
	}
	for _, pn := range prev.Planned {
		if _, ok := in.members[pn.ID]; !ok && !pn.away() {
			return ReasonNodeLeave, pn.ID // a new departure
		}
	}
	for _, id := range alive {
		if _, ok := was[id]; !ok {
			if _, ok := in.history[id]; ok {
				return ReasonNodeRejoin, id
			}
			return ReasonNodeJoin, id
		}
	}
	// Same nodes: one came back (from away, or a new process), maybe with
	// another zone or weight.
	for _, id := range alive {
		m := in.members[id]
		if pn := was[id]; pn.away() || pn.Zone != m.Zone || pn.Weight != m.Weight || pn.Incarnation != m.Incarnation {
			return ReasonNodeRejoin, id
		}
	}
	for _, pn := range prev.Planned {
		if _, ok := in.members[pn.ID]; !ok {
			return ReasonNodeLeave, pn.ID // its delay ended
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
