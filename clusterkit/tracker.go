package clusterkit

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// view is this node's copy of the cluster state in etcd, kept by the
// tracker from one watch of the cluster's prefix, so every change arrives
// in etcd's order and a Txn's changes arrive together.
type view struct {
	rev       int64
	members   map[string]memberRecord
	memberRev int64 // revision of the last membership change
	history   map[string]historyRecord
	ready     map[string]readyRecord
	assign    *assignment
	assignRev int64 // mod revision of the assignment key
	rebalance *rebalanceRecord
	request   *rebalanceRequest
	leaders   map[string]leaderKey // election keys
	departed  map[string]departure
}

// rebalanceRequest is the value of rebalance-request (a manual rebalance).
type rebalanceRequest struct {
	ID   string    `json:"id"`
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

type leaderKey struct {
	value     string
	createRev int64
}

func newView() *view {
	return &view{
		members: map[string]memberRecord{}, history: map[string]historyRecord{}, ready: map[string]readyRecord{},
		leaders: map[string]leaderKey{}, departed: map[string]departure{},
	}
}

// leader returns the current leader's node ID: the election key with the
// lowest create revision.
func (v *view) leader() string {
	best, id := int64(0), ""
	for _, k := range v.leaders {
		if best == 0 || k.createRev < best {
			best, id = k.createRev, k.value
		}
	}
	return id
}

// pendingManual returns the manual request the leader has not started yet.
func (v *view) pendingManual() *rebalanceRequest {
	if v.request == nil || (v.rebalance != nil && v.rebalance.LastRequestID == v.request.ID) {
		return nil
	}
	return v.request
}

// reconcileInput copies what reconcile needs; the copy is the leader's.
func (v *view) reconcileInput(cfg clusterConfig, now time.Time) reconcileInput {
	in := reconcileInput{
		cfg: cfg, members: maps.Clone(v.members), ready: maps.Clone(v.ready), assign: v.assign,
		rebalance: v.rebalance, history: maps.Clone(v.history), departed: maps.Clone(v.departed), now: now,
	}
	if r := v.pendingManual(); r != nil {
		in.manual, in.manualNode = r.ID, r.Node
	}
	return in
}

// tracker applies watch batches to the view and turns what changed into
// hooks, snapshots, handoffs and leader wake-ups. Only the tracker
// goroutine writes the view; others read it under mu.
type tracker struct {
	ck *ClusterKit

	mu   sync.RWMutex
	view *view

	// Owned by the tracker goroutine.
	startedRebalances map[int64]*rebalanceRecord // delivered starts, by ID
	completed         map[int64]bool
	handoffs          map[int]*myHandoff // partition → this node's running handoff
	lastHealth        string

	// applied is closed and replaced after every applied batch, for waiters.
	appliedMu sync.Mutex
	applied   chan struct{}
}

type myHandoff struct {
	since  int64
	cancel context.CancelFunc
}

func newTracker(ck *ClusterKit) *tracker {
	return &tracker{
		ck: ck, view: newView(), startedRebalances: map[int64]*rebalanceRecord{}, completed: map[int64]bool{},
		handoffs: map[int]*myHandoff{}, applied: make(chan struct{}),
	}
}

// read runs fn with the view under the read lock.
func (t *tracker) read(fn func(v *view)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	fn(t.view)
}

// waitApplied returns a channel closed after the next applied batch.
func (t *tracker) waitApplied() <-chan struct{} {
	t.appliedMu.Lock()
	defer t.appliedMu.Unlock()
	return t.applied
}

// run applies batches until the watcher ends.
func (t *tracker) run(w *watcher.Watcher) {
	for b := range w.Batches() {
		t.apply(b)
	}
}

// apply applies one batch. Events come in revision order; within a batch,
// member changes are reported first, then a rebalance start, then the
// partition changes of the new map, then a rebalance completion.
func (t *tracker) apply(b watcher.Batch) {
	ck := t.ck
	k := ck.keys
	now := time.Now()
	initial := b.Initial
	ck.rt().syncWatchStats()

	t.mu.Lock()
	v := t.view
	oldAssign := v.assign
	oldRebalance := v.rebalance
	type memberEvent struct {
		put    bool
		rec    memberRecord
		prev   *memberRecord
		reason string
	}
	var memberEvents []memberEvent
	for _, e := range b.Events {
		switch key := e.Key; {
		case strings.HasPrefix(key, k.membersPrefix()):
			id := strings.TrimPrefix(key, k.membersPrefix())
			v.memberRev = e.ModRevision
			old, existed := v.members[id]
			if e.Type == watcher.Put {
				var rec memberRecord
				if err := json.Unmarshal(e.Value, &rec); err != nil {
					ck.log.Warn("ignoring malformed member record", zap.String("key", key), zapErr(err))
					continue
				}
				rec.ID, rec.Incarnation = id, e.Lease
				v.members[id] = rec
				if existed {
					memberEvents = append(memberEvents, memberEvent{put: true, rec: rec, prev: &old})
				} else {
					memberEvents = append(memberEvents, memberEvent{put: true, rec: rec})
				}
				continue
			}
			if !existed {
				if json.Unmarshal(e.PrevValue, &old) != nil {
					old = memberRecord{ID: id}
				}
			}
			reason := LeaveLeaseExpired
			switch old.State {
			case memberLeaving:
				reason = LeaveGraceful
			case memberRemoved:
				reason = LeaveRemovedByAdmin
			}
			delete(v.members, id)
			v.departed[id] = departure{Record: old, Reason: reason, At: now}
			memberEvents = append(memberEvents, memberEvent{rec: old, reason: reason})
		case strings.HasPrefix(key, k.historyPrefix()):
			id := strings.TrimPrefix(key, k.historyPrefix())
			var h historyRecord
			if e.Type == watcher.Put && json.Unmarshal(e.Value, &h) == nil {
				v.history[id] = h
			} else {
				delete(v.history, id)
			}
		case strings.HasPrefix(key, k.readyPrefix()):
			id := strings.TrimPrefix(key, k.readyPrefix())
			if e.Type == watcher.Put {
				if r, err := unmarshalReady(e.Value); err == nil {
					v.ready[id] = r
				}
			} else {
				delete(v.ready, id)
			}
		case strings.HasPrefix(key, k.leaderPrefix()):
			if e.Type == watcher.Put {
				v.leaders[key] = leaderKey{value: string(e.Value), createRev: e.CreateRevision}
			} else {
				delete(v.leaders, key)
			}
		case key == k.assignment():
			if e.Type == watcher.Put {
				a, err := unmarshalAssignment(e.Value)
				if err != nil || len(a.Partitions) != ck.opts.PartitionCount {
					ck.log.Error("ignoring malformed assignment", zapErr(err))
					continue
				}
				v.assign, v.assignRev = a, e.ModRevision
			}
		case key == k.rebalance():
			var r rebalanceRecord
			if e.Type == watcher.Put && json.Unmarshal(e.Value, &r) == nil {
				v.rebalance = &r
			}
		case key == k.rebalanceRequest():
			var r rebalanceRequest
			if e.Type == watcher.Put && json.Unmarshal(e.Value, &r) == nil {
				v.request = &r
			}
		}
	}
	v.rev = b.Revision
	members := v.members
	newAssign := v.assign
	newRebalance := v.rebalance
	leader := v.leader()
	history := v.history
	departed := v.departed
	// Snapshot of the view for events; the maps are replaced, never
	// mutated, after this point by the next apply, so copy what we use.
	members = maps.Clone(members)
	history = maps.Clone(history)
	departed = maps.Clone(departed)
	t.mu.Unlock()

	// Publish the new snapshot before any hook runs, so handlers see it.
	snap := newSnapshot(ck.opts.NodeID, members, newAssign, v.memberRev, leader)
	ck.snap.Store(snap)
	ck.updateGauges(snap)
	if newAssign != oldAssign {
		ck.metrics.lastAssignment.Store(now.UnixNano())
		if !initial {
			ck.log.Info("partition map updated", zap.Int64("version", newAssign.Version), zap.Int64("revision", b.Revision),
				zap.String("leader", leader), zap.Bool("settled", snap.settled))
		}
	}

	if !initial {
		for _, me := range memberEvents {
			t.memberEvent(me.put, me.rec, me.prev, me.reason, oldAssign, newAssign, members, history, departed, now)
		}
	}

	// Rebalances that started here and were overtaken by a later one (a
	// resync can skip records): they completed, report it.
	rb := newRebalance
	if rb != nil {
		for _, id := range slices.Sorted(maps.Keys(t.startedRebalances)) {
			if started := t.startedRebalances[id]; id < rb.ID && !t.completed[id] {
				t.completeRebalance(started, now)
			}
		}
	}
	// Rebalance start: a record this node has not seen start before.
	if rb != nil && rb != oldRebalance && t.startedRebalances[rb.ID] == nil && !t.completed[rb.ID] {
		if initial {
			// Joined mid-rebalance (or after it): its start was not
			// delivered here, so neither is its completion.
			t.completed[rb.ID] = true
		} else {
			t.startedRebalances[rb.ID] = rb
			ev := rb.event()
			ck.metrics.rebalancesStarted.Inc()
			ck.log.Info("rebalance started", zap.Int64("rebalance", rb.ID), zap.String("trigger", rb.Trigger),
				zap.String("trigger_node", rb.TriggerNodeID), zap.Int("moves", rb.Moves))
			emit(ck, "rebalance_start", &ck.hooks.rebalanceStart, func(fn RebalanceStartHandler) { fn(ev) }, false)
		}
	}

	if newAssign != oldAssign {
		t.assignmentEvents(oldAssign, newAssign, snap, rb, initial, now)
	}

	if rb != nil && !rb.running() && !t.completed[rb.ID] {
		if t.startedRebalances[rb.ID] != nil {
			t.completeRebalance(rb, rb.CompletedAt)
		}
		t.completed[rb.ID] = true
	}

	t.checkHealth(now)

	t.appliedMu.Lock()
	close(t.applied)
	t.applied = make(chan struct{})
	t.appliedMu.Unlock()
}

// completeRebalance reports a rebalance this node saw start as complete
// (after every partition change submitted before it: a barrier).
func (t *tracker) completeRebalance(rb *rebalanceRecord, at time.Time) {
	ck := t.ck
	t.completed[rb.ID] = true
	delete(t.startedRebalances, rb.ID)
	ev := rb.event()
	d := max(0, at.Sub(rb.StartedAt))
	ck.metrics.rebalancesCompleted.Inc()
	ck.metrics.rebalanceDuration.Observe(d.Seconds())
	ck.log.Info("rebalance completed", zap.Int64("rebalance", rb.ID), zap.Duration("duration", d))
	emit(ck, "rebalance_complete", &ck.hooks.rebalanceComplete, func(fn RebalanceCompleteHandler) { fn(ev, d) }, true)
}

// memberEvent reports one member change as a join, rejoin or leave.
func (t *tracker) memberEvent(put bool, rec memberRecord, prev *memberRecord, reason string, oldAssign, newAssign *assignment,
	members map[string]memberRecord, history map[string]historyRecord, departed map[string]departure, now time.Time) {
	ck := t.ck
	node := rec.node()
	if !put {
		node.Status = NodeOffline
		ev := &NodeLeaveEvent{Node: &node, Reason: reason, Timestamp: now}
		if oldAssign != nil {
			for p, ps := range oldAssign.Partitions {
				switch i := slices.Index(ps.Serving, rec.ID); {
				case i == 0:
					ev.PartitionsOwned = append(ev.PartitionsOwned, PartitionID(p))
				case i > 0:
					ev.PartitionsReplica = append(ev.PartitionsReplica, PartitionID(p))
				}
			}
		}
		ck.log.Info("node left", zap.String("member", rec.ID), zap.String("reason", reason))
		emit(ck, "node_leave", &ck.hooks.nodeLeave, func(fn NodeLeaveHandler) { fn(ev) }, false)
		return
	}
	if prev != nil {
		if prev.Incarnation == rec.Incarnation {
			return // an update of a live member (health, state)
		}
		// The same node registered again without its old key expiring.
		ev := &NodeRejoinEvent{Node: &node, LastSeenAt: now, Timestamp: now,
			PartitionsBeforeLeave: partitionsOf(newAssign, rec.ID)}
		ck.log.Info("node rejoined", zap.String("member", rec.ID), zap.Duration("offline", 0))
		emit(ck, "node_rejoin", &ck.hooks.nodeRejoin, func(fn NodeRejoinHandler) { fn(ev) }, false)
		return
	}
	// The leader's history record of the departure, if it wrote one, else
	// what this node saw: the map still names the node's partitions then,
	// since the leader writes history with the map that drops them.
	var last time.Time
	var before []string
	h, hasHistory := history[rec.ID]
	d, departedHere := departed[rec.ID]
	known := hasHistory || departedHere
	if hasHistory && (!departedHere || h.Incarnation == d.Record.Incarnation) {
		last = h.LastSeen
		for _, p := range slices.Sorted(slices.Values(slices.Concat(h.Primaries, h.Replicas))) {
			before = append(before, PartitionID(p))
		}
	} else if departedHere {
		last = d.At
		before = partitionsOf(oldAssign, rec.ID)
	}
	if known {
		ev := &NodeRejoinEvent{Node: &node, LastSeenAt: last, OfflineDuration: max(0, now.Sub(last)),
			PartitionsBeforeLeave: before, Timestamp: now}
		ck.log.Info("node rejoined", zap.String("member", rec.ID), zap.Duration("offline", ev.OfflineDuration))
		emit(ck, "node_rejoin", &ck.hooks.nodeRejoin, func(fn NodeRejoinHandler) { fn(ev) }, false)
		return
	}
	ev := &NodeJoinEvent{Node: &node, ClusterSize: len(members), IsBootstrap: oldAssign == nil && len(members) == 1, Timestamp: now}
	ck.log.Info("node joined", zap.String("member", rec.ID), zap.Int("cluster_size", len(members)))
	emit(ck, "node_join", &ck.hooks.nodeJoin, func(fn NodeJoinHandler) { fn(ev) }, false)
}

// partitionsOf lists the partitions id serves in a.
func partitionsOf(a *assignment, id string) []string {
	if a == nil {
		return nil
	}
	var out []string
	for p, ps := range a.Partitions {
		if slices.Contains(ps.Serving, id) {
			out = append(out, PartitionID(p))
		}
	}
	return out
}

// assignmentEvents reports the partition gains between two maps and starts
// or cancels this node's handoffs.
func (t *tracker) assignmentEvents(oldA, newA *assignment, snap *snapshot, rb *rebalanceRecord, initial bool, now time.Time) {
	ck := t.ck
	me := ck.opts.NodeID
	reason := ReasonNodeJoin
	if rb != nil {
		reason = rb.Trigger
	}
	// A node registered anew (new incarnation) since the old map held no
	// data from before: what it served counts as lost, like the leader
	// counts it (see reconcile).
	restarted := restartedNodes(oldA, newA)
	for p, ps := range newA.Partitions {
		var old partitionState
		if oldA != nil {
			old = oldA.Partitions[p]
			if len(restarted) > 0 {
				old.Serving = slices.DeleteFunc(slices.Clone(old.Serving), func(n string) bool { return restarted[n] })
			}
		}
		oldPrimary := ""
		if len(old.Serving) > 0 {
			oldPrimary = old.Serving[0]
		}
		newPrimary := ""
		if len(ps.Target) > 0 {
			newPrimary = ps.Target[0]
		}
		base := PartitionChangeEvent{PartitionID: PartitionID(p), PartitionIndex: p, ChangeReason: reason,
			OldPrimary: oldPrimary, NewPrimary: newPrimary, Epoch: ps.Epoch, Timestamp: now}

		// Nodes that start receiving the partition.
		for _, in := range ps.Incoming {
			if slices.Contains(old.Incoming, in) && !(initial && in.Node == me) {
				continue
			}
			if initial && in.Node != me {
				continue
			}
			ev := base
			to := snap.node(in.Node)
			ev.CopyToNode = &to
			for i := range snap.serving[p] {
				ev.CopyFromNodes = append(ev.CopyFromNodes, &snap.serving[p][i])
			}
			t.submitChange(p, &ev, in.Node == me, in.Since)
		}
		if initial {
			continue
		}
		// Nodes that serve at once: no surviving source, or the first map.
		survivors := 0
		for _, n := range ps.Serving {
			if slices.Contains(old.Serving, n) {
				survivors++
			}
		}
		for _, n := range ps.Serving {
			if slices.Contains(old.Serving, n) || survivors > 0 {
				continue // kept, or became serving through a reported handoff
			}
			// No server survived: every new server, including one that was
			// still receiving the partition, serves without a source.
			ev := base
			to := snap.node(n)
			ev.CopyToNode, ev.NoSource = &to, true
			t.submitChange(p, &ev, false, 0)
		}
		// A replica promoted to primary (its old primary left or moved).
		if len(ps.Serving) > 0 && len(old.Serving) > 0 && ps.Serving[0] != old.Serving[0] && slices.Contains(old.Serving, ps.Serving[0]) {
			ev := base
			to := snap.node(ps.Serving[0])
			ev.CopyToNode, ev.Promoted = &to, true
			t.submitChange(p, &ev, false, 0)
		}
	}
	t.reconcileHandoffs(newA)
}

// restartedNodes returns the nodes planned in both maps with another
// incarnation in the new one.
func restartedNodes(oldA, newA *assignment) map[string]bool {
	if oldA == nil {
		return nil
	}
	was := make(map[string]int64, len(oldA.Planned))
	for _, pn := range oldA.Planned {
		was[pn.ID] = pn.Incarnation
	}
	var out map[string]bool
	for _, pn := range newA.Planned {
		if inc, ok := was[pn.ID]; ok && inc != 0 && inc != pn.Incarnation {
			if out == nil {
				out = map[string]bool{}
			}
			out[pn.ID] = true
		}
	}
	return out
}

// submitChange queues a partition change. For this node's own incoming
// partitions (mine), the handlers are retried until they succeed and the
// success is recorded in this node's ready record.
func (t *tracker) submitChange(p int, ev *PartitionChangeEvent, mine bool, since int64) {
	ck := t.ck
	// runHandlers calls every registered handler in order, stopping at the
	// first error (or recovered panic).
	runHandlers := func(ctx context.Context) error {
		for _, fn := range get(&ck.hooks, &ck.hooks.partitionChange) {
			if err := callHook("partition_change", ck.metrics, func() error { return fn(ctx, ev) }); err != nil {
				return err
			}
		}
		return nil
	}
	if !mine {
		ck.disp.submitPartition(p, &handoff{run: runHandlers, onError: func(err error, _ int) {
			ck.log.Warn("partition change handler failed", zap.String("partition", ev.PartitionID), zapErr(err))
		}})
		return
	}
	if cur, ok := t.handoffs[p]; ok {
		if cur.since == since {
			return // already running
		}
		cur.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.handoffs[p] = &myHandoff{since: since, cancel: cancel}
	// failedOnce is only touched by the dispatcher goroutine running this
	// handoff (run and onError are never called concurrently).
	var failedOnce bool
	h := &handoff{ctx: ctx, retry: true}
	h.onError = func(err error, attempt int) {
		ck.metrics.handoffFailures.Inc()
		if !failedOnce {
			failedOnce = true
			ck.rt().failingHandoff(p, true)
		}
		ck.log.Warn("handoff failed; retrying", zap.String("partition", ev.PartitionID), zap.Int("attempt", attempt), zapErr(err))
	}
	h.run = func(ctx context.Context) error {
		err := runHandlers(ctx)
		if err == nil && ctx.Err() == nil {
			if failedOnce {
				ck.rt().failingHandoff(p, false)
			}
			ck.rt().markReady(p, since)
		}
		return err
	}
	ck.log.Info("receiving partition", zap.String("partition", ev.PartitionID), zap.Int64("since", since),
		zap.Int("sources", len(ev.CopyFromNodes)))
	ck.disp.submitPartition(p, h)
}

// reconcileHandoffs cancels this node's handoffs that the map withdrew and
// forgets ready entries that are no longer incoming.
func (t *tracker) reconcileHandoffs(a *assignment) {
	ck := t.ck
	me := ck.opts.NodeID
	want := map[int]int64{}
	for p, ps := range a.Partitions {
		for _, in := range ps.Incoming {
			if in.Node == me {
				want[p] = in.Since
			}
		}
	}
	for p, h := range t.handoffs {
		if since, ok := want[p]; !ok || since != h.since {
			h.cancel()
			delete(t.handoffs, p)
			ck.rt().failingHandoff(p, false)
		}
	}
	ck.rt().keepReady(want)
}

// stopHandoffs cancels every running handoff (on Stop).
func (t *tracker) stopHandoffs() {
	for p, h := range t.handoffs {
		h.cancel()
		delete(t.handoffs, p)
	}
}

// updateGauges refreshes the per-node gauges from a new snapshot.
func (ck *ClusterKit) updateGauges(s *snapshot) {
	m := ck.metrics
	m.assignmentVersion.Set(float64(s.version))
	active, unhealthy := 0, 0
	for _, n := range s.members {
		if n.Status == NodeUnhealthy {
			unhealthy++
		} else {
			active++
		}
	}
	m.members.WithLabelValues(NodeActive).Set(float64(active))
	m.members.WithLabelValues(NodeUnhealthy).Set(float64(unhealthy))
	var primary, replica, incomingN int
	for i, p := range s.partitions {
		if s.isPrimary[i] {
			primary++
		}
		if s.isReplica[i] {
			replica++
		}
		if slices.Contains(p.IncomingNodes, ck.opts.NodeID) {
			incomingN++
		}
	}
	m.partitions.WithLabelValues("primary").Set(float64(primary))
	m.partitions.WithLabelValues("replica").Set(float64(replica))
	m.partitions.WithLabelValues("incoming").Set(float64(incomingN))
	m.handoffsPending.Set(float64(incomingN))
}
