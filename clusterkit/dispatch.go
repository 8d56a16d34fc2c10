package clusterkit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// dispatcher runs the application's hooks off the watch goroutine.
//
// Items are taken in the order they were submitted. A cluster item (join,
// rejoin, leave, rebalance start/complete, health) runs on the sequencer
// goroutine, one at a time; a partition item goes to its partition's FIFO,
// and partitions run concurrently, at most `limit` at once. So: cluster
// items run in order and never overlap; items of one partition run in
// order; a partition item submitted after a cluster item starts after that
// cluster item returned; a barrier item (a rebalance completion) waits
// until every partition item submitted before it has finished.
//
// submit never blocks. Every goroutine of the dispatcher is started
// through the owner's WaitGroup and ends once the owner's ctx is
// cancelled (queued items are dropped then); the owner waits for the
// group. Handlers run under no lock of ClusterKit's, so they may call every
// lookup; they must not call Stop.
type dispatcher struct {
	log   *zap.Logger
	limit chan struct{}
	ctx   context.Context
	group *sync.WaitGroup

	mu      sync.Mutex
	queue   []dispatchItem
	wake    chan struct{}
	runners map[int]*partitionRunner

	partitionsBusy sync.WaitGroup // partition items submitted, not finished
}

// dispatchItem is either a cluster item (run set) or a partition item
// (handoff set).
type dispatchItem struct {
	run     func()
	barrier bool

	partition int
	handoff   *handoff
}

// handoff is one partition item: run is called until it returns nil, ctx
// ends, or (when retry is false) once. Errors are reported to onError. ctx,
// when set, must derive from the dispatcher's; nil means the dispatcher's.
type handoff struct {
	ctx     context.Context
	run     func(ctx context.Context) error
	retry   bool
	onError func(err error, attempt int)
}

type partitionRunner struct {
	items []*handoff
}

// newDispatcher starts the sequencer in group; it runs until ctx ends.
func newDispatcher(ctx context.Context, group *sync.WaitGroup, log *zap.Logger, limit int) *dispatcher {
	d := &dispatcher{
		log: log, limit: make(chan struct{}, limit), ctx: ctx, group: group,
		wake: make(chan struct{}, 1), runners: map[int]*partitionRunner{},
	}
	group.Go(d.sequence)
	return d
}

// submitCluster queues a cluster-level item; barrier makes it wait for all
// partition items submitted before it.
func (d *dispatcher) submitCluster(run func(), barrier bool) {
	d.push(dispatchItem{run: run, barrier: barrier})
}

// submitPartition queues a partition item.
func (d *dispatcher) submitPartition(p int, h *handoff) {
	d.push(dispatchItem{partition: p, handoff: h})
}

func (d *dispatcher) push(it dispatchItem) {
	d.mu.Lock()
	d.queue = append(d.queue, it)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest queued item, waiting for one; false once ctx ends.
func (d *dispatcher) next() (dispatchItem, bool) {
	for {
		d.mu.Lock()
		if len(d.queue) > 0 {
			it := d.queue[0]
			d.queue[0] = dispatchItem{}
			d.queue = d.queue[1:]
			if len(d.queue) == 0 {
				d.queue = nil // let a burst's array go
			}
			d.mu.Unlock()
			return it, d.ctx.Err() == nil
		}
		d.mu.Unlock()
		select {
		case <-d.ctx.Done():
			return dispatchItem{}, false
		case <-d.wake:
		}
	}
}

func (d *dispatcher) sequence() {
	for {
		it, ok := d.next()
		if !ok {
			return
		}
		if it.handoff != nil {
			d.startPartition(it.partition, it.handoff)
			continue
		}
		if it.barrier {
			// Runners end promptly once ctx is cancelled, so this wait is
			// bounded by the handlers themselves.
			d.partitionsBusy.Wait()
		}
		if d.ctx.Err() != nil {
			return
		}
		it.run()
	}
}

// startPartition appends h to its partition's FIFO, starting the
// partition's runner if none runs.
func (d *dispatcher) startPartition(p int, h *handoff) {
	d.partitionsBusy.Add(1)
	d.mu.Lock()
	r, running := d.runners[p]
	if !running {
		r = &partitionRunner{}
		d.runners[p] = r
	}
	r.items = append(r.items, h)
	d.mu.Unlock()
	if !running {
		d.group.Go(func() { d.runPartition(p, r) })
	}
}

// runPartition runs one partition's items in order, then exits.
func (d *dispatcher) runPartition(p int, r *partitionRunner) {
	for {
		d.mu.Lock()
		if len(r.items) == 0 {
			delete(d.runners, p)
			if len(d.runners) == 0 {
				d.runners = map[int]*partitionRunner{} // a map never shrinks: let a burst's go
			}
			d.mu.Unlock()
			return
		}
		h := r.items[0]
		r.items[0] = nil
		r.items = r.items[1:]
		d.mu.Unlock()
		d.runHandoff(h)
		d.partitionsBusy.Done()
	}
}

// handoff backoff bounds.
const (
	handoffRetryMin = 100 * time.Millisecond
	handoffRetryMax = 10 * time.Second
)

func (d *dispatcher) runHandoff(h *handoff) {
	ctx := h.ctx
	if ctx == nil {
		ctx = d.ctx
	}
	b := newBackoff(handoffRetryMin, handoffRetryMax)
	b.jitter = true
	for attempt := 1; ctx.Err() == nil; attempt++ {
		select {
		case d.limit <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := h.run(ctx)
		<-d.limit
		if err == nil {
			return
		}
		if h.onError != nil {
			h.onError(err, attempt)
		}
		if !h.retry || !b.wait(ctx) {
			return
		}
	}
}

// callHook calls fn, recovering a panic into an error so that one bad
// handler cannot crash the process or stop the others.
func callHook(name string, m *metrics, fn func() error) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			m.hookPanics.WithLabelValues(name).Inc()
			err = fmt.Errorf("clusterkit: %s handler panicked: %v", name, r)
		}
		m.hookDuration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}()
	return fn()
}
