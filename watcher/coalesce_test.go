package watcher

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// setQueueBound sets maxQueuedBytes for one test.
func setQueueBound(t *testing.T, n int) {
	old := maxQueuedBytes
	maxQueuedBytes = n
	t.Cleanup(func() { maxQueuedBytes = old })
}

// TestSlowConsumerCoalesces: while the consumer does not read, the watcher
// keeps reading etcd and, past its queue bound, holds one pending change
// per key instead of one batch per revision; when the consumer reads again
// it gets a few batches whose net effect is etcd's state (the view checks
// every batch's contract on the way). Before the outbox, the watcher
// blocked on the consumer and delivered all 400 batches.
func TestSlowConsumerCoalesces(t *testing.T) {
	setQueueBound(t, 64<<10)
	s := etcdtest.Start(t)
	cli := s.Client(t)
	for _, opts := range [][]Option{nil, {WithoutPrevValues()}} {
		prefix := fmt.Sprintf("/p%d/", len(opts))
		w := startWatch(t, cli, prefix, opts...)
		v := newView(t, prefix)
		v.noPrevValues = len(opts) > 0
		v.readUntil(w, "initial batch", func() bool { return len(v.batches) == 1 })

		// 400 revisions, 1 KB each, on 10 keys; keys are deleted and
		// re-created, and one key is created and deleted in between.
		val := strings.Repeat("x", 1024)
		const revisions = 400
		var last int64
		for i := range revisions {
			k := fmt.Sprint(prefix, i%10)
			switch {
			case i == 200:
				last = mustPut(t, cli, prefix+"transient", val)
			case i == 201:
				last = mustDelete(t, cli, prefix+"transient")
			case i%40 == 25:
				last = mustDelete(t, cli, k)
			default:
				last = mustPut(t, cli, k, fmt.Sprint(i, val))
			}
		}
		waitFor(t, "the watcher to receive every revision", func() bool { return w.received.Load() >= last })

		v.readUntilEqual(w, cli)
		got := len(v.batches) - 1
		if got > 10 || v.coalesced == 0 || w.Stats().Coalesced != int64(v.coalesced) {
			t.Fatalf("%s: %d batches (%d coalesced, Stats %+v) for %d revisions written while the consumer did not read: want a few, coalesced",
				prefix, got, v.coalesced, w.Stats(), revisions)
		}
		if w.Revision() != v.rev {
			t.Fatalf("%s: Revision() = %d after the last batch, want %d", prefix, w.Revision(), v.rev)
		}
		t.Logf("%s: %d revisions arrived as %d batches", prefix, revisions, got)
	}
}

// TestCoalescingKeepsTheContract: random puts, deletes and re-creations on
// a few keys while the consumer reads with random pauses, with a queue
// bound small enough that it coalesces often: every batch keeps the
// contract (checked by the view) and the consumer ends with etcd's state.
func TestCoalescingKeepsTheContract(t *testing.T) {
	setQueueBound(t, 2<<10)
	s := etcdtest.Start(t)
	cli := s.Client(t)
	w := startWatch(t, cli, "/p/")
	v := newView(t, "/p/")
	v.readUntil(w, "initial batch", func() bool { return len(v.batches) == 1 })

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 600 {
			k := fmt.Sprint("/p/", r.IntN(6))
			if r.IntN(4) == 0 {
				mustDelete(t, cli, k)
				continue
			}
			mustPut(t, cli, k, fmt.Sprint(i, strings.Repeat("v", r.IntN(400))))
		}
	}()
	pause := rand.New(rand.NewPCG(uint64(seed), 2))
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		case b := <-w.Batches():
			v.apply(b)
			if pause.IntN(10) == 0 { // now and then, fall behind
				time.Sleep(time.Duration(5+pause.IntN(20)) * time.Millisecond)
			}
		}
	}
	v.readUntilEqual(w, cli)
	if v.coalesced == 0 {
		t.Fatalf("no batch was coalesced in %d batches: the test did not exercise coalescing", len(v.batches))
	}
	t.Logf("%d batches, %d coalesced", len(v.batches), v.coalesced)
}
