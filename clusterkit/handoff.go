package clusterkit

import (
	"context"

	"go.uber.org/zap"
)

// handoffReady is what a handoff reports: the partition is now held
// (markReady), which partitions are still incoming (keepReady), and
// whether the handoff is failing. readyState implements it.
type handoffReady interface {
	markReady(p int, since int64)
	keepReady(want map[int]int64)
	setFailing(p int, failing bool)
	// failed records one failed attempt of partition p's handoff.
	failed(p int, err error)
}

// handoffs submits partition changes to the dispatcher and keeps this
// node's own handoffs: for a partition this node receives, the handlers
// are retried until they succeed, and the success is reported to ready.
// Only the follow goroutine calls it.
type handoffs struct {
	ctx     context.Context // the run's: every handoff's context derives from it
	me      string
	n       *notifier
	ready   handoffReady
	running map[int]*myHandoff // partition → this node's running handoff
}

type myHandoff struct {
	since  int64
	cancel context.CancelFunc
}

// submit queues a partition change. mine says that the change is this
// node's own incoming partition p, incoming since version since.
func (h *handoffs) submit(p int, ev *PartitionChangeEvent, mine bool, since int64) {
	n := h.n
	if !mine {
		n.disp.submitPartition(p, &handoff{run: h.handlers(ev), onError: func(err error, _ int) {
			n.log.Warn("partition change handler failed", zap.String("partition", ev.PartitionID), zapErr(err))
		}})
		return
	}
	if cur, ok := h.running[p]; ok {
		if cur.since == since {
			return // already running
		}
		cur.cancel()
	}
	ctx, cancel := context.WithCancel(h.ctx)
	h.running[p] = &myHandoff{since: since, cancel: cancel}
	run := h.handlers(ev)
	// failedOnce is only touched by the dispatcher goroutine running this
	// handoff (run and onError are never called concurrently).
	var failedOnce bool
	item := &handoff{ctx: ctx, retry: true}
	item.onError = func(err error, attempt int) {
		n.metrics.handoffFailures.Inc()
		failedOnce = true
		h.ready.failed(p, err)
		n.log.Warn("handoff failed; retrying", zap.String("partition", ev.PartitionID), zap.Int("attempt", attempt), zapErr(err))
	}
	item.run = func(ctx context.Context) error {
		err := run(ctx)
		if err == nil && ctx.Err() == nil {
			if failedOnce {
				h.ready.setFailing(p, false)
			}
			logReady(n.log, p, since)
			h.ready.markReady(p, since)
		}
		return err
	}
	n.log.Info("receiving partition", zap.String("partition", ev.PartitionID), zap.Int64("since", since),
		zap.Int("sources", len(ev.CopyFromNodes)))
	n.disp.submitPartition(p, item)
}

// handlers returns a function that calls every registered partition-change
// handler with ev in order, stopping at the first error (or recovered
// panic).
func (h *handoffs) handlers(ev *PartitionChangeEvent) func(ctx context.Context) error {
	n := h.n
	return func(ctx context.Context) error {
		for _, fn := range get(n.hooks, &n.hooks.partitionChange) {
			if err := callHook("partition_change", n.metrics, func() error { return fn(ctx, ev) }); err != nil {
				return err
			}
		}
		return nil
	}
}

// withdraw cancels this node's handoffs that map a no longer plans and
// forgets ready entries that are no longer incoming.
func (h *handoffs) withdraw(a *assignment) {
	want := map[int]int64{}
	for p, ps := range a.Partitions {
		for _, in := range ps.Incoming {
			if in.Node == h.me {
				want[p] = in.Since
			}
		}
	}
	for p, cur := range h.running {
		if since, ok := want[p]; !ok || since != cur.since {
			cur.cancel()
			delete(h.running, p)
			h.ready.setFailing(p, false)
		}
	}
	h.ready.keepReady(want)
}
