package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// newTestDispatcher returns a dispatcher with limit and a stop function
// that cancels it and waits for its goroutines.
func newTestDispatcher(t *testing.T, limit int) *dispatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	d := newDispatcher(ctx, &wg, zap.NewNop(), limit)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return d
}

// drain waits until every item submitted before it has finished.
func drain(t *testing.T, d *dispatcher) {
	t.Helper()
	done := make(chan struct{})
	d.submitCluster(func() { close(done) }, true)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("dispatcher did not drain")
	}
}

func TestDispatcherClusterItemsRunInOrderOneAtATime(t *testing.T) {
	d := newTestDispatcher(t, 4)
	var mu sync.Mutex
	var got []int
	var running, overlap atomic.Int32
	for i := range 100 {
		d.submitCluster(func() {
			if running.Add(1) > 1 {
				overlap.Add(1)
			}
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
			running.Add(-1)
		}, false)
	}
	drain(t, d)
	if !slices.IsSorted(got) || len(got) != 100 {
		t.Fatalf("cluster items ran as %v; want 0..99 in order", got)
	}
	if overlap.Load() != 0 {
		t.Fatalf("%d cluster items overlapped", overlap.Load())
	}
}

func TestDispatcherPartitionItemsInOrderPerPartition(t *testing.T) {
	d := newTestDispatcher(t, 3)
	var mu sync.Mutex
	got := map[int][]int{}
	for seq := range 20 {
		for p := range 5 {
			d.submitPartition(p, &handoff{run: func(context.Context) error {
				mu.Lock()
				got[p] = append(got[p], seq)
				mu.Unlock()
				return nil
			}})
		}
	}
	drain(t, d)
	for p := range 5 {
		if len(got[p]) != 20 || !slices.IsSorted(got[p]) {
			t.Fatalf("partition %d ran %v; want 0..19 in order", p, got[p])
		}
	}
}

func TestDispatcherBoundsPartitionConcurrency(t *testing.T) {
	const limit = 3
	d := newTestDispatcher(t, limit)
	started := make(chan int, 10)
	release := make(chan struct{})
	for p := range 5 {
		d.submitPartition(p, &handoff{run: func(context.Context) error {
			started <- p
			<-release
			return nil
		}})
	}
	for range limit {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("fewer than limit partitions ran concurrently")
		}
	}
	select {
	case p := <-started:
		t.Fatalf("partition %d started beyond the limit of %d", p, limit)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	drain(t, d)
	if len(started) != 5-limit {
		t.Fatalf("%d partitions started after the release; want %d", len(started), 5-limit)
	}
}

func TestDispatcherBarrierWaitsForEarlierPartitionItems(t *testing.T) {
	d := newTestDispatcher(t, 4)
	release := make(chan struct{})
	var finished atomic.Bool
	d.submitPartition(7, &handoff{run: func(context.Context) error {
		<-release
		finished.Store(true)
		return nil
	}})
	barrierRan := make(chan bool, 1)
	d.submitCluster(func() { barrierRan <- finished.Load() }, true)
	select {
	case <-barrierRan:
		t.Fatal("the barrier ran while a partition item submitted before it was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case ok := <-barrierRan:
		if !ok {
			t.Fatal("the barrier ran before the partition item finished")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the barrier never ran")
	}
}

func TestDispatcherPartitionItemWaitsForEarlierClusterItem(t *testing.T) {
	d := newTestDispatcher(t, 4)
	release := make(chan struct{})
	var clusterDone atomic.Bool
	d.submitCluster(func() { <-release; clusterDone.Store(true) }, false)
	partitionSaw := make(chan bool, 1)
	d.submitPartition(1, &handoff{run: func(context.Context) error { partitionSaw <- clusterDone.Load(); return nil }})
	select {
	case <-partitionSaw:
		t.Fatal("a partition item started before the cluster item submitted before it returned")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if !<-partitionSaw {
		t.Fatal("the partition item ran before the cluster item returned")
	}
}

func TestDispatcherRetriesHandoffUntilSuccess(t *testing.T) {
	d := newTestDispatcher(t, 1)
	var calls atomic.Int32
	var attempts []int
	done := make(chan struct{})
	d.submitPartition(0, &handoff{retry: true,
		run: func(context.Context) error {
			if calls.Add(1) < 3 {
				return errors.New("not yet")
			}
			close(done)
			return nil
		},
		onError: func(_ error, attempt int) { attempts = append(attempts, attempt) },
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("handoff not retried to success; %d calls", calls.Load())
	}
	drain(t, d)
	if !slices.Equal(attempts, []int{1, 2}) {
		t.Fatalf("onError attempts %v; want [1 2]", attempts)
	}
}

func TestDispatcherStopCancelsHandoffsAndDropsQueued(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	d := newDispatcher(ctx, &wg, zap.NewNop(), 1)
	running := make(chan struct{})
	var ranAfter atomic.Bool
	d.submitPartition(0, &handoff{retry: true, run: func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		return ctx.Err()
	}})
	d.submitCluster(func() { ranAfter.Store(true) }, true)
	<-running
	cancel()
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("dispatcher goroutines did not end after cancel")
	}
	if ranAfter.Load() {
		t.Fatal("a queued barrier ran after the dispatcher was cancelled")
	}
}

func TestCallHookRecoversPanic(t *testing.T) {
	m, err := newMetrics(nil, "n")
	if err != nil {
		t.Fatal(err)
	}
	err = callHook("node_join", m, func() error { panic(fmt.Sprint("boom")) })
	if err == nil || counterValue(m.hookPanics.WithLabelValues("node_join")) != 1 {
		t.Fatalf("callHook: %v, panics %v; want an error and one counted panic", err, counterValue(m.hookPanics.WithLabelValues("node_join")))
	}
}
