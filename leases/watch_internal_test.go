package leases

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// The watch recovers from compaction: a watch from a compacted revision
// fails, the key is re-read, and watching resumes from there, so a later
// delete is still noticed.
func TestWatchRecoversFromCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const key = "/clusterkit/test/members/node-1"
	r, err := Register(ctx, cli, key, []byte("v"), 5*time.Second)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	defer r.Close(context.Background())
	get, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	created := get.Kvs[0].ModRevision
	for range 3 {
		if _, err := cli.Put(ctx, "/other", "x"); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	srv.Compact(ctx, cli)

	// Stop the run (the lease stays alive for its TTL) and run a watch loop
	// of the same lease from before the compaction.
	r.Abandon()
	core, logs := observer.New(zap.DebugLevel)
	wctx, wcancel := context.WithCancelCause(context.Background())
	defer wcancel(nil)
	w := &Registration{cli: cli, key: key, id: r.id, ttl: r.ttl, o: r.o, log: zap.New(core), ctx: wctx, cancel: wcancel}
	done := make(chan struct{})
	go func() { defer close(done); w.watch(wctx, created-1) }()

	// Let it fail on compaction and re-read the key.
	for deadline := time.Now().Add(10 * time.Second); logs.FilterMessage("watch ended; re-reading the key").Len() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the watch did not end on compaction")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("watch ended with: %v", logs.FilterMessage("watch ended; re-reading the key").All()[0].ContextMap()["error"])
	time.Sleep(200 * time.Millisecond) // and watch again
	select {
	case <-done:
		t.Fatalf("watch ended after compaction: %v", context.Cause(wctx))
	default:
	}
	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("watch did not notice the delete after recovering from compaction")
	}
	if cause := context.Cause(wctx); !errors.Is(cause, ErrKeyDeleted) {
		t.Fatalf("cause = %v, want ErrKeyDeleted", cause)
	}
}
