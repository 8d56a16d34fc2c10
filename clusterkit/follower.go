package clusterkit

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// follower follows the cluster state: it applies each watch batch to the
// view, publishes the new snapshot, derives the hook events (events.go)
// and starts or cancels this node's handoffs (handoff.go). One goroutine
// runs follow; others read the view under mu and wait for batches with
// nextApply or waitFor. Other nodes' ready records stay undecoded in the
// view: the planner decodes them after read returns (readyCache).
type follower struct {
	decoder
	me         string
	notifier   *notifier
	metrics    *metrics
	snap       *atomic.Pointer[snapshot]
	handoffs   *handoffs
	afterApply func(now time.Time)
	now        func() time.Time // the clock; time.Now but in tests
	ctx        context.Context  // the run's: waitFor ends with it

	mu   sync.RWMutex
	view *view

	rebalances rebalanceProgress // owned by the follow goroutine

	// applied is closed and replaced after every applied batch, for waiters.
	appliedMu sync.Mutex
	applied   chan struct{}
}

// followerConfig is what a follower needs from its run.
type followerConfig struct {
	me         string
	decoder    decoder
	notifier   *notifier
	ready      handoffReady
	snap       *atomic.Pointer[snapshot]
	afterApply func(now time.Time) // may be nil
	now        func() time.Time    // nil means time.Now
}

// newFollower returns a follower whose handoffs run under ctx.
func newFollower(ctx context.Context, c followerConfig) *follower {
	f := &follower{
		decoder: c.decoder, me: c.me, notifier: c.notifier, metrics: c.notifier.metrics, snap: c.snap,
		afterApply: c.afterApply, now: c.now, ctx: ctx, view: newView(c.decoder.partitions),
		rebalances: rebalanceProgress{started: map[int64]*rebalanceRecord{}}, applied: make(chan struct{}),
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.afterApply == nil {
		f.afterApply = func(time.Time) {}
	}
	f.handoffs = &handoffs{ctx: ctx, me: c.me, n: c.notifier, ready: c.ready, running: map[int]*myHandoff{}}
	return f
}

// read runs fn with the view under the read lock.
func (f *follower) read(fn func(v *view)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.view)
}

// nextApply returns a channel closed after the next applied batch.
func (f *follower) nextApply() <-chan struct{} {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.applied
}

// waitFor waits until cond holds on the view (cond runs under the read
// lock, after each batch). It returns ctx's error, or ErrStopped when the
// run ends first.
func (f *follower) waitFor(ctx context.Context, cond func(v *view) bool) error {
	for {
		ch := f.nextApply()
		ok := false
		f.read(func(v *view) { ok = cond(v) })
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-f.ctx.Done():
			return ErrStopped
		}
	}
}

// follow applies batches until the watcher ends.
func (f *follower) follow(w *watcher.Watcher) {
	for b := range w.Batches() {
		f.apply(b)
	}
}

// batchChange is what one batch changed, as the event derivation needs it.
// Only the follow goroutine writes the view, so it reads the maps below
// without the lock.
type batchChange struct {
	initial                 bool
	now                     time.Time
	oldAssign, newAssign    *assignment
	oldRebalance, rebalance *rebalanceRecord
	members                 map[string]memberRecord
	history                 map[string]historyRecord
	snap                    *snapshot
}

// apply applies one batch. Events come in revision order; within a batch,
// member changes are reported first, then a rebalance start, then the
// partition changes of the new map, then a rebalance completion.
func (f *follower) apply(b watcher.Batch) {
	now := f.now()
	f.mu.Lock()
	v := f.view
	c := batchChange{initial: b.Initial, now: now, oldAssign: v.assign, oldRebalance: v.rebalance}
	members := f.decoder.apply(v, b, now)
	c.newAssign, c.rebalance, c.members, c.history = v.assign, v.rebalance, v.members, v.history
	leader := v.leader()
	// Publish the new snapshot before the view's lock is released, so that
	// whoever waits on the view (Start) finds the lookups already answering
	// from it, and before any hook runs, so handlers see it.
	c.snap = publishSnapshot(f.snap, f.me, v, leader, c.initial, c.oldAssign, members)
	f.mu.Unlock()

	f.metrics.observeSnapshot(c.snap)
	if c.newAssign != c.oldAssign {
		f.metrics.lastAssignment.Store(now.UnixNano())
		if !c.initial {
			f.log.Info("partition map updated", zap.Int64("version", c.newAssign.Version), zap.Int64("revision", b.Revision),
				zap.String("leader", leader), zap.Bool("settled", c.snap.settled))
		}
	}
	if !c.initial {
		for _, m := range members {
			f.memberEvent(m, &c)
		}
	}
	f.rebalanceEvents(&c)
	f.afterApply(now)

	f.appliedMu.Lock()
	close(f.applied)
	f.applied = make(chan struct{})
	f.appliedMu.Unlock()
}
