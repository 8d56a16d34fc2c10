package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/election"
	"github.com/clusterkit-go/clusterkit/leases"
)

// Timing of the leader.
const (
	// debounceQuiet is how long membership and ready records must stay
	// unchanged before the leader plans; debounceMax bounds the wait
	// under constant churn.
	debounceQuiet = 50 * time.Millisecond
	debounceMax   = 500 * time.Millisecond
	// maxAssignmentBytes keeps the map under etcd's default request limit
	// (1.5 MiB) with room for the rest of the Txn.
	maxAssignmentBytes = 1 << 20
)

// campaignLoop campaigns on the membership lease, so that leadership ends
// with membership, and leads while it wins, until ctx ends.
func (r *run) campaignLoop(ctx context.Context, reg *leases.Registration) {
	ck := r.ck
	b := newBackoff(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil && !r.leaving.Load() {
		l, err := r.campaign(ctx, reg)
		if err != nil {
			if ctx.Err() == nil {
				ck.metrics.etcdErrors.WithLabelValues("campaign").Inc()
				ck.log.Warn("campaign failed", zapErr(err))
				b.wait(ctx)
			}
			continue
		}
		b.reset()
		r.mu.Lock()
		r.leadership = l
		r.mu.Unlock()
		ck.setLeader(true)
		ck.log.Info("became leader", zap.Int64("token", l.Token()))
		r.lead(ctx, l)
		ck.setLeader(false)
		r.mu.Lock()
		r.leadership = nil
		r.mu.Unlock()
		l.Close()
		ck.log.Info("leadership ended")
	}
}

// campaign waits until this node leads, on the membership lease. The
// registration is the lease's only renewer; the leadership ends when the
// registration does.
func (r *run) campaign(ctx context.Context, reg *leases.Registration) (*election.Leadership, error) {
	return election.CampaignOnLease(ctx, r.cli, reg.LeaseID(), r.ck.keys.leaderPrefix(), r.ck.opts.NodeID,
		election.WithLeaseDone(reg.Done()))
}

// lead reconciles the assignment while l holds and ctx lasts: after every
// change of the view (membership changes debounced), it plans and writes
// the next map fenced on the leadership (see write).
func (r *run) lead(ctx context.Context, l *election.Leadership) {
	d := debounce{lastRev: -1}
	var waitRev int64 // after a write: wait until the view has it
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Taken before the view is read, so a batch applied meanwhile
		// wakes this round's wait.
		changed := r.follower.nextApply()
		st := r.leaderView()
		wait := d.wait(max(st.memberRev, st.readyRev), st.needPlan || st.awaitingReady, time.Now())
		if st.viewRev < waitRev {
			wait = time.Hour // until the view catches up
		} else if st.hold > 0 {
			wait = st.hold
		} else if wait == 0 {
			d.reset()
			var rev int64
			var lost bool
			if wait, rev, lost = r.planAndWrite(l, st); lost {
				return
			}
			if rev > 0 {
				waitRev = rev
				continue
			}
		}
		timer.Reset(wait)
		select {
		case <-l.Done():
			return
		case <-ctx.Done():
			return
		case <-changed:
		case <-timer.C:
		}
	}
}

// leaderState is what the leader reads from the view for one round.
type leaderState struct {
	in                           reconcileInput
	viewRev, memberRev, readyRev int64
	base                         mapBase
	needPlan                     bool
	// awaitingReady: some partition is incoming (a ready record may
	// complete its handoff).
	awaitingReady bool
	// hold > 0: do not plan yet (see comebackHold).
	hold time.Duration
}

func (r *run) leaderView() leaderState {
	var st leaderState
	now := time.Now()
	o := &r.ck.opts
	st.in = r.plannerInput(now, func(v *view) {
		st.viewRev, st.memberRev, st.readyRev, st.base = v.rev, v.memberRev, v.readyRev, v.mapBase()
		st.needPlan = v.assign == nil || !liveMatches(v.assign.Planned, v.members) || st.base.repair
		st.awaitingReady = v.assign != nil && v.assign.incomingCount() > 0
		st.hold = comebackHold(v, r.reregisteredAt.Load(), o.LeaseTTL, now)
		if v.leader() != r.ck.opts.NodeID {
			// The view has not seen this leadership start, nor so every
			// write of the leader before.
			st.hold = time.Hour
		}
	})
	st.in.delay, st.in.maintShare, st.in.maintWindow = o.RebalanceDelay, o.Maintenance.Share, o.Maintenance.Window
	st.in.maxMoves, st.in.maxMovesPerNode = o.MaxConcurrentMoves, o.MaxConcurrentMovesPerNode
	return st
}

// comebackHold returns how long a leader that itself registered again
// after losing its lease (at reregistered, unix nanoseconds) waits before
// planning, while nodes the map names as live are missing: when its own
// lease lapsed, etcd was in trouble for everyone (an outage, a frozen etcd
// leader revoking every lease when it resumes), and the others are likely
// registering again as well. It waits at most one TTL after its own return.
func comebackHold(v *view, reregistered int64, ttl time.Duration, now time.Time) time.Duration {
	if reregistered == 0 || v.assign == nil {
		return 0
	}
	left := time.Unix(0, reregistered).Add(ttl).Sub(now)
	if left <= 0 {
		return 0
	}
	for _, pn := range v.assign.Planned {
		if _, live := v.members[pn.ID]; !live && !pn.away() {
			return left
		}
	}
	return 0
}

// liveMatches reports whether the live (not away) nodes of planned are
// exactly members, with the same attributes and processes.
func liveMatches(planned []plannedNode, members map[string]memberRecord) bool {
	live := slices.DeleteFunc(slices.Clone(planned), plannedNode.away)
	return slices.EqualFunc(live, plannedOf(members), sameNode)
}

// planAndWrite reconciles st and writes the result. It returns how long to
// wait before the next round, the revision written (0 if none), and lost
// when the leadership ended.
func (r *run) planAndWrite(l *election.Leadership, st leaderState) (wait time.Duration, rev int64, lost bool) {
	st.in.now = time.Now()
	prev := st.in.assign
	if prev != nil && st.base.version > prev.Version {
		bumped := *prev // above the newest version seen (not applied)
		bumped.Version = st.base.version
		st.in.assign = &bumped
	}
	out, err := reconcile(st.in)
	if err != nil {
		r.ck.log.Error("reconcile failed", zapErr(err))
		return time.Second, 0, false
	}
	repairOutput(&out, st.in.assign, st.base)
	if out.empty() {
		if !out.wakeAt.IsZero() {
			return max(time.Millisecond, out.wakeAt.Sub(time.Now())), 0, false
		}
		return time.Hour, 0, false
	}
	rev, err = r.write(l, out, prev, st.base)
	switch {
	case errors.Is(err, election.ErrNotLeader) || l.Context().Err() != nil:
		return 0, 0, true
	case err != nil:
		r.ck.log.Warn("leader write failed", zapErr(err))
		r.ck.metrics.etcdErrors.WithLabelValues("leader_txn").Inc()
		return 100 * time.Millisecond, 0, false
	case rev == 0:
		return time.Hour, 0, false // the view is behind etcd: wait for it
	}
	return 0, rev, false
}

// debounce delays planning while membership or ready records change (a
// burst of starts, stops or completed handoffs): the leader plans once
// they stayed unchanged for debounceQuiet, or debounceMax after the first
// change of a burst, so a burst costs one plan rather than one per change.
type debounce struct {
	lastRev     int64 // -1 before the first round
	first, last time.Time
}

// wait returns how long to wait before planning, given the revision of the
// last change (membership or ready records) and whether a change can
// matter (the map needs a plan, or awaits ready records).
func (d *debounce) wait(changeRev int64, pending bool, now time.Time) time.Duration {
	if changeRev != d.lastRev {
		if d.lastRev != -1 || pending {
			if d.first.IsZero() {
				d.first = now
			}
			d.last = now
		}
		d.lastRev = changeRev
	}
	if !pending || d.first.IsZero() {
		return 0
	}
	return max(0, min(debounceQuiet-now.Sub(d.last), debounceMax-now.Sub(d.first)))
}

// reset starts a new burst (after planning).
func (d *debounce) reset() { d.first = time.Time{} }

// plannedOf returns the live members as planned nodes, sorted by ID.
func plannedOf(members map[string]memberRecord) []plannedNode {
	ids := slices.Sorted(maps.Keys(members))
	out := make([]plannedNode, len(ids))
	for i, id := range ids {
		m := members[id]
		out[i] = plannedNode{ID: id, Zone: m.Zone, Weight: m.Weight, Incarnation: m.Incarnation, Durable: m.Durable}
	}
	return out
}

// repairOutput makes out rewrite the map when base needs a repair and
// the plan did not change it (the same map, next version), and numbers a
// first map above the newest version seen.
func repairOutput(out *reconcileOutput, prev *assignment, base mapBase) {
	if out.assign == nil && base.repair && prev != nil {
		next := *prev
		next.Version++
		out.assign = &next
	}
	if a := out.assign; a != nil && prev == nil && base.version >= a.Version {
		old := a.Version
		a.Version = base.version + 1
		for p := range a.Partitions {
			for i := range a.Partitions[p].Incoming {
				if a.Partitions[p].Incoming[i].Since == old {
					a.Partitions[p].Incoming[i].Since = a.Version
				}
			}
		}
	}
}

// write applies out fenced on the leadership and on the map's commit key:
// in one Txn when it fits etcd's limits, else the parts in several and the
// commit last (see mapwire.go). It returns the commit's revision, or 0 if
// the map changed meanwhile (the view is stale).
func (r *run) write(l *election.Leadership, out reconcileOutput, prev *assignment, base mapBase) (int64, error) {
	k := r.ck.keys
	txns, err := writeOps(k, out, prev, &base, r.cfg)
	if err != nil {
		return 0, err
	}
	conds := base.conds(k)
	var rev int64
	for _, ops := range txns {
		resp, err := l.Txn(r.ctx, conds, ops...)
		if err != nil {
			return 0, err
		}
		if !resp.Succeeded {
			return 0, nil
		}
		rev = resp.Header.Revision
	}
	if out.assign != nil {
		r.ck.log.Debug("assignment written", zap.Int64("version", out.assign.Version), zap.Int64("revision", rev),
			zap.Int("txns", len(txns)))
	}
	r.ck.metrics.leaderTxns.Add(float64(len(txns)))
	return rev, nil
}

// writeOps encodes out as the Txns of one leader write, the commit last.
func writeOps(k keys, out reconcileOutput, prev *assignment, base *mapBase, cfg clusterConfig) ([][]clientv3.Op, error) {
	var staged, final []sizedOp
	if a := out.assign; a != nil && base.keepLegacy {
		b, err := a.marshal()
		if err != nil {
			return nil, err
		}
		if len(b) > maxAssignmentBytes {
			return nil, fmt.Errorf("clusterkit: assignment of %d bytes exceeds %d", len(b), maxAssignmentBytes)
		}
		final = append(final, sizedOp{clientv3.OpPut(k.assignment(), string(b)), len(b)})
	} else if a != nil {
		var err error
		if staged, err = mapPartOps(k, base, prev, a); err != nil {
			return nil, err
		}
		meta, err := put(k.mapMeta(), wireMeta{Format: mapFormat, Version: a.Version, Partitions: len(a.Partitions),
			Chunk: chunkPartitions, Maintenance: a.Maintenance, Served: a.Served})
		if err != nil {
			return nil, err
		}
		final = append(final, meta)
		if base.legacy {
			final = append(final, sizedOp{clientv3.OpDelete(k.assignment()), 0})
		}
		if base.configFormat < mapFormat {
			cfg.FormatVersion = mapFormat
			op, err := put(k.config(), cfg)
			if err != nil {
				return nil, err
			}
			final = append(final, op)
		}
	}
	if out.rebalance != nil {
		op, err := put(k.rebalance(), out.rebalance)
		if err != nil {
			return nil, err
		}
		final = append(final, op)
	}
	for _, id := range slices.Sorted(maps.Keys(out.history)) {
		op, err := put(k.history(id), out.history[id])
		if err != nil {
			return nil, err
		}
		staged = append(staged, op)
	}
	for _, id := range out.forget {
		staged = append(staged, sizedOp{clientv3.OpDelete(k.history(id)), len(k.history(id))})
	}
	return packTxns(staged, final), nil
}
