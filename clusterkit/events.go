package clusterkit

import (
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// rebalanceProgress is which rebalances this node delivered: started holds
// the rebalances whose start it delivered and whose completion it has not,
// and every rebalance up to lastDone is over for it (completed, or never
// to be delivered because it began before this node watched). Rebalance
// IDs only grow.
type rebalanceProgress struct {
	started  map[int64]*rebalanceRecord
	lastDone int64
}

func (p *rebalanceProgress) done(id int64) bool { return id <= p.lastDone }

// memberEvent reports one member change as a join, rejoin or leave.
func (f *follower) memberEvent(m memberChange, c *batchChange) {
	n := f.notifier
	node := m.rec.node()
	switch {
	case !m.put:
		node.Status = NodeOffline
		old, now := c.oldAssign, c.now
		ev := sync.OnceValue(func() *NodeLeaveEvent {
			ev := &NodeLeaveEvent{Node: &node, Reason: m.reason, Timestamp: now}
			if old != nil {
				for p, ps := range old.Partitions {
					switch i := slices.Index(ps.Serving, m.rec.ID); {
					case i == 0:
						ev.PartitionsOwned = append(ev.PartitionsOwned, PartitionID(p))
					case i > 0:
						ev.PartitionsReplica = append(ev.PartitionsReplica, PartitionID(p))
					}
				}
			}
			return ev
		})
		f.log.Info("node left", zapNode(m.rec.ID), zap.String("reason", string(m.reason)))
		notify(n, "node_leave", &n.hooks.nodeLeave, func(fn NodeLeaveHandler) { fn(ev()) }, false)
	case m.prev != nil && m.prev.Incarnation == m.rec.Incarnation:
		// An update of a live member (health, state), or the same process
		// registering again on a new lease before the old key expired.
	case m.prev != nil:
		// A new process took its node's live membership over.
		ev := &NodeRejoinEvent{Node: &node, LastSeenAt: c.now, Timestamp: c.now, DataKept: m.rec.Durable}
		full := completedBy(ev, partitionsOf(c.newAssign, m.rec.ID))
		f.log.Info("node rejoined", zapNode(m.rec.ID), zap.Duration("offline", 0))
		notify(n, "node_rejoin", &n.hooks.nodeRejoin, func(fn NodeRejoinHandler) { fn(full()) }, false)
	default:
		f.arrivalEvent(m, node, c)
	}
}

// arrivalEvent reports a new member key: a rejoin when the leader's
// history or this node's watch knows the node, else a join.
func (f *follower) arrivalEvent(m memberChange, node Node, c *batchChange) {
	n := f.notifier
	// The leader's history record of the departure, if it wrote one, else
	// what this node saw: the map still names the node's partitions then,
	// since the leader writes history with the map that drops them.
	var last time.Time
	var before func() []string
	var prevIncarnation int64
	h, hasHistory := c.history[m.rec.ID]
	switch d := m.departure; {
	case hasHistory && (d == nil || h.Incarnation == d.Record.Incarnation):
		last, prevIncarnation = h.LastSeen, h.Incarnation
		before = func() []string {
			var ids []string
			for _, p := range slices.Sorted(slices.Values(slices.Concat(h.Primaries, h.Replicas))) {
				ids = append(ids, PartitionID(p))
			}
			return ids
		}
	case d != nil:
		last, prevIncarnation = d.At, d.Record.Incarnation
		before = partitionsOf(c.oldAssign, m.rec.ID)
	default:
		ev := &NodeJoinEvent{Node: &node, ClusterSize: len(c.members), IsBootstrap: c.oldAssign == nil && len(c.members) == 1, Timestamp: c.now}
		f.log.Info("node joined", zapNode(m.rec.ID), zap.Int("cluster_size", len(c.members)))
		notify(n, "node_join", &n.hooks.nodeJoin, func(fn NodeJoinHandler) { fn(ev) }, false)
		return
	}
	same := prevIncarnation != 0 && prevIncarnation == m.rec.Incarnation
	ev := &NodeRejoinEvent{Node: &node, LastSeenAt: last, OfflineDuration: max(0, c.now.Sub(last)),
		SameIncarnation: same, DataKept: same || m.rec.Durable, Timestamp: c.now}
	f.log.Info("node rejoined", zapNode(m.rec.ID), zap.Duration("offline", ev.OfflineDuration),
		zap.Bool("same_incarnation", same), zap.Bool("data_kept", ev.DataKept))
	full := completedBy(ev, before)
	notify(n, "node_rejoin", &n.hooks.nodeRejoin, func(fn NodeRejoinHandler) { fn(full()) }, false)
}

// completedBy returns ev with PartitionsBeforeLeave set from before,
// which runs once, when the first handler asks (on the dispatcher's
// goroutine).
func completedBy(ev *NodeRejoinEvent, before func() []string) func() *NodeRejoinEvent {
	return sync.OnceValue(func() *NodeRejoinEvent {
		ev.PartitionsBeforeLeave = before()
		return ev
	})
}

// partitionsOf returns a function listing the partitions id serves in a
// (immutable): the list costs a pass over the map, so the events build it
// on the dispatcher's goroutine, and only for a registered handler.
func partitionsOf(a *assignment, id string) func() []string {
	return func() []string {
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
}

// rebalanceEvents reports, in order: rebalances overtaken by a later one,
// the start of a new rebalance, the partition changes of a new map, and
// the completion of the current rebalance.
func (f *follower) rebalanceEvents(c *batchChange) {
	rb := c.rebalance
	if rb != nil {
		// Rebalances that started here and were overtaken by a later one (a
		// resync can skip records): they completed, report it.
		for _, id := range slices.Sorted(maps.Keys(f.rebalances.started)) {
			if id < rb.ID {
				f.completeRebalance(f.rebalances.started[id], c.now)
			}
		}
		f.startRebalance(rb, c)
	}
	if c.newAssign != c.oldAssign {
		f.assignmentEvents(c)
	}
	if rb != nil && !rb.running() && !f.rebalances.done(rb.ID) {
		if f.rebalances.started[rb.ID] != nil {
			f.completeRebalance(rb, rb.CompletedAt)
		}
		f.rebalances.lastDone = rb.ID
	}
}

// startRebalance reports rb's start if this node has not seen it start.
func (f *follower) startRebalance(rb *rebalanceRecord, c *batchChange) {
	if rb == c.oldRebalance || f.rebalances.started[rb.ID] != nil || f.rebalances.done(rb.ID) {
		return
	}
	if c.initial {
		// Joined mid-rebalance (or after it): its start was not delivered
		// here, so neither is its completion.
		f.rebalances.lastDone = rb.ID
		return
	}
	f.rebalances.started[rb.ID] = rb
	ev := rb.event()
	f.metrics.rebalancesStarted.Inc()
	f.log.Info("rebalance started", zap.Int64("rebalance", rb.ID), zap.String("trigger", string(rb.Trigger)),
		zap.String("trigger_node", rb.TriggerNodeID), zap.Int("moves", rb.Moves))
	n := f.notifier
	notify(n, "rebalance_start", &n.hooks.rebalanceStart, func(fn RebalanceStartHandler) { fn(ev) }, false)
}

// completeRebalance reports a rebalance this node saw start as complete
// (after every partition change submitted before it: a barrier).
func (f *follower) completeRebalance(rb *rebalanceRecord, at time.Time) {
	f.rebalances.lastDone = max(f.rebalances.lastDone, rb.ID)
	delete(f.rebalances.started, rb.ID)
	ev := rb.event()
	d := max(0, at.Sub(rb.StartedAt))
	f.metrics.rebalancesCompleted.Inc()
	f.metrics.rebalanceDuration.Observe(d.Seconds())
	f.log.Info("rebalance completed", zap.Int64("rebalance", rb.ID), zap.Duration("duration", d))
	n := f.notifier
	notify(n, "rebalance_complete", &n.hooks.rebalanceComplete, func(fn RebalanceCompleteHandler) { fn(ev, d) }, true)
}

// assignmentEvents reports the partition gains between two maps and starts
// or cancels this node's handoffs.
func (f *follower) assignmentEvents(c *batchChange) {
	reason := ReasonNodeJoin
	if c.rebalance != nil {
		reason = c.rebalance.Trigger
	}
	// A node that runs a new process without durable storage since the
	// old map holds no data from before: what it served counts as lost,
	// like the leader counts it (see reconcile).
	var lost map[string]bool
	if c.oldAssign != nil && !samePlanned(c.oldAssign.Planned, c.newAssign.Planned) {
		now := make(map[string]plannedNode, len(c.newAssign.Planned))
		for _, pn := range c.newAssign.Planned {
			now[pn.ID] = pn
		}
		lost = lostData(c.oldAssign.Planned, func(id string) (int64, bool, bool) {
			pn, ok := now[id]
			return pn.Incarnation, pn.Durable, ok
		}, nil)
	}
	for p := range f.changedPartitions(c, len(lost) == 0) {
		ps := c.newAssign.Partitions[p]
		var old partitionState
		if c.oldAssign != nil {
			old = c.oldAssign.Partitions[p]
			if len(lost) > 0 {
				old.Serving = slices.DeleteFunc(slices.Clone(old.Serving), func(n string) bool { return lost[n] })
				old.Target = slices.DeleteFunc(slices.Clone(old.Target), func(n string) bool { return lost[n] })
			}
		}
		base := PartitionChangeEvent{PartitionID: PartitionID(p), PartitionIndex: p, ChangeReason: reason,
			OldPrimary: first(old.Serving), NewPrimary: first(ps.Target), Epoch: ps.Epoch, Timestamp: c.now}
		f.partitionEvents(p, old, ps, base, c)
	}
	f.handoffs.withdraw(c.newAssign)
}

// changedPartitions yields, in index order, the partitions whose events
// assignmentEvents derives: those of the chunks the new map changed when
// the map knows them (a partition that did not change gains nothing) and
// no node's data counts as lost (lost, which changes old states), else
// every partition. So a version costs the chunks it touched, not the map.
func (f *follower) changedPartitions(c *batchChange, noneLost bool) iter.Seq[int] {
	P := len(c.newAssign.Partitions)
	chunks, known := f.view.parts.changedChunks(c.newAssign, c.oldAssign)
	return func(yield func(int) bool) {
		if !known || c.initial || !noneLost {
			for p := range P {
				if !yield(p) {
					return
				}
			}
			return
		}
		for _, ch := range chunks {
			lo, hi := chunkRange(ch, P)
			for p := lo; p < hi; p++ {
				if !yield(p) {
					return
				}
			}
		}
	}
}

// partitionEvents reports the gains of one partition between its old and
// new state.
func (f *follower) partitionEvents(p int, old, ps partitionState, base PartitionChangeEvent, c *batchChange) {
	snap := c.snap
	// Nodes that start receiving the partition. The first batch reports
	// only this node's own (its handoffs must run), the others' were
	// reported before this node watched.
	for _, in := range ps.Incoming {
		mine := in.Node == f.me
		if (c.initial && !mine) || (!c.initial && slices.Contains(old.Incoming, in)) {
			continue
		}
		ev := base
		to := snap.node(in.Node)
		// It held a slot of the partition before and kept its data: it
		// only needs what it missed.
		ev.CopyToNode, ev.CatchUp = &to, slices.Contains(old.Target, in.Node)
		from := snap.servingAt(p)
		for i := range from {
			ev.CopyFromNodes = append(ev.CopyFromNodes, &from[i])
		}
		f.handoffs.submit(p, &ev, mine, in.Since)
	}
	if c.initial {
		return
	}
	// Nodes that serve at once: no surviving source, or the first map.
	survived := slices.ContainsFunc(ps.Serving, func(n string) bool { return slices.Contains(old.Serving, n) })
	for _, n := range ps.Serving {
		if survived {
			break // every new server became serving through a reported handoff
		}
		// No server survived: every new server, including one that was
		// still receiving the partition, serves without a source.
		ev := base
		to := snap.node(n)
		ev.CopyToNode, ev.NoSource = &to, true
		f.handoffs.submit(p, &ev, false, 0)
	}
	// A replica promoted to primary (its old primary left or moved).
	if len(ps.Serving) > 0 && len(old.Serving) > 0 && ps.Serving[0] != old.Serving[0] && slices.Contains(old.Serving, ps.Serving[0]) {
		ev := base
		to := snap.node(ps.Serving[0])
		ev.CopyToNode, ev.Promoted = &to, true
		f.handoffs.submit(p, &ev, false, 0)
	}
}

// first returns ids[0], or "".
func first(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}
