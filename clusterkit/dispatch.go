package clusterkit

import (
	"context"
	"fmt"
	"math/rand/v2"
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
// events are delivered in order and never overlap; events of one partition
// are delivered in order; a partition item submitted after a cluster item
// starts after that cluster item's handlers returned; a barrier item (a
// rebalance completion) waits until every partition item submitted before
// it has finished.
//
// submit never blocks. Handlers run under no lock of ClusterKit's, so they
// may call every lookup; they must not call Stop.
type dispatcher struct {
	log   *zap.Logger
	limit chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the sequencer and the partition runners

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
// ends, or (when retry is false) once. Errors are reported to onError.
type handoff struct {
	ctx     context.Context
	run     func(ctx context.Context) error
	retry   bool
	onError func(err error, attempt int)
}

type partitionRunner struct {
	items []*handoff
}

func newDispatcher(log *zap.Logger, limit int) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dispatcher{
		log: log, limit: make(chan struct{}, limit), ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), runners: map[int]*partitionRunner{},
	}
	d.wg.Add(1)
	go d.sequence()
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

// stop cancels running handoffs, drops queued items and waits for every
// dispatcher goroutine. Handlers that ignore their context delay it.
func (d *dispatcher) stop() {
	d.cancel()
	d.wg.Wait()
}

func (d *dispatcher) sequence() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			d.mu.Unlock()
			select {
			case <-d.ctx.Done():
				return
			case <-d.wake:
				continue
			}
		}
		it := d.queue[0]
		d.queue[0] = dispatchItem{}
		d.queue = d.queue[1:]
		d.mu.Unlock()
		if d.ctx.Err() != nil {
			return
		}
		if it.handoff == nil {
			if it.barrier {
				d.waitPartitions()
			}
			if d.ctx.Err() != nil {
				return
			}
			it.run()
			continue
		}
		d.partitionsBusy.Add(1)
		d.mu.Lock()
		r, running := d.runners[it.partition]
		if !running {
			r = &partitionRunner{}
			d.runners[it.partition] = r
		}
		r.items = append(r.items, it.handoff)
		d.mu.Unlock()
		if !running {
			d.wg.Add(1)
			go d.runPartition(it.partition, r)
		}
	}
}

// waitPartitions waits for the partition items in flight, or for stop.
func (d *dispatcher) waitPartitions() {
	done := make(chan struct{})
	go func() { d.partitionsBusy.Wait(); close(done) }()
	select {
	case <-done:
	case <-d.ctx.Done():
		<-done // runners end promptly once ctx is cancelled
	}
}

// runPartition runs one partition's items in order, then exits.
func (d *dispatcher) runPartition(p int, r *partitionRunner) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if len(r.items) == 0 {
			delete(d.runners, p)
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
	ctx, cancel := mergeContexts(h.ctx, d.ctx)
	defer cancel()
	delay := handoffRetryMin
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return
		}
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
		if !h.retry {
			return
		}
		jitter := time.Duration(rand.Int64N(int64(delay/2) + 1))
		t := time.NewTimer(delay/2 + jitter)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		delay = min(2*delay, handoffRetryMax)
	}
}

// mergeContexts returns a context cancelled when either parent is.
func mergeContexts(a, b context.Context) (context.Context, context.CancelFunc) {
	if a == nil {
		return context.WithCancel(b)
	}
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
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
