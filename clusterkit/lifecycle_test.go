package clusterkit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/tcpproxy"
)

// An incoming node whose every source dies serves at once, and is told so.
func TestIncomingNodeWhoseSourcesDieServesWithNoSource(t *testing.T) {
	srv := etcdtest.Start(t)
	o1 := externalOptions(t, srv, "node-1")
	o1.ReplicationFactor = 1
	first := clustertest.Start(t, o1, nil)

	var mu sync.Mutex
	noSource := map[string]bool{}
	receiving := make(chan struct{}, 1)
	o2 := externalOptions(t, srv, "node-2")
	o2.ReplicationFactor = 1
	second := clustertest.Start(t, o2, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID != "node-2" {
				return nil
			}
			if e.NoSource {
				mu.Lock()
				noSource[e.PartitionID] = true
				mu.Unlock()
				return nil
			}
			select {
			case receiving <- struct{}{}:
			default:
			}
			<-ctx.Done() // the copy never finishes
			return ctx.Err()
		})
	})
	select {
	case <-receiving:
	case <-time.After(10 * time.Second):
		t.Fatal("node-2 never started receiving")
	}
	first.Halt() // every source of node-2's incoming partitions dies
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(second) }, "node-2 alone never settled")
	for _, p := range second.GetPartitionsForNode("node-2") {
		if !second.IsPrimary(p) {
			t.Fatalf("%s: node-2 serves it but is not primary", p.ID)
		}
	}
	if n := len(second.GetPartitionsForNode("node-2")); n != o2.PartitionCount {
		t.Fatalf("node-2 serves %d partitions, want all %d", n, o2.PartitionCount)
	}
	// Every partition node-2 was receiving when node-1 died (and every one
	// node-1 served) reached node-2 as a NoSource event.
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(noSource)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return count() == o2.PartitionCount },
		"NoSource events for fewer than %d partitions", o2.PartitionCount)
}

// Stop does not wait for a Start that cannot finish, and the operations
// refuse (not panic) while Start runs.
func TestStopInterruptsStart(t *testing.T) {
	o := clustertest.Options(t, "node-1")
	o.Etcd.Endpoints = []string{"http://127.0.0.1:1"} // nothing listens there
	o.Etcd.DialTimeout = time.Minute
	ck, err := clusterkit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	startErr := make(chan error, 1)
	go func() { startErr <- ck.Start(context.Background()) }()
	time.Sleep(200 * time.Millisecond)
	if err := ck.SetCustomData(contextTimeout(t, time.Second), "k", nil); !errors.Is(err, clusterkit.ErrNotStarted) {
		t.Fatalf("SetCustomData during Start: got %v, want ErrNotStarted", err)
	}
	if err := ck.RebalancePartitions(contextTimeout(t, time.Second)); !errors.Is(err, clusterkit.ErrNotStarted) {
		t.Fatalf("RebalancePartitions during Start: got %v, want ErrNotStarted", err)
	}
	// The exported handler, mounted elsewhere, answers during Start.
	req := httptest.NewRequest(http.MethodPost, "/cluster/join", strings.NewReader(`{"node_id":"x"}`))
	req.Header.Set("Authorization", "Bearer test-token")
	rec := httptest.NewRecorder()
	ck.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("join during Start: status %d, want 503", rec.Code)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- ck.Stop(contextTimeout(t, 5*time.Second)) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Stop waited for a Start that cannot finish")
	}
	if err := <-startErr; err == nil {
		t.Fatal("Start succeeded without etcd")
	}
}

// A process that restarts and takes its own live record over is a new
// incarnation: its partitions are handed off to it again.
func TestRestartedNodeReceivesItsPartitionsAgain(t *testing.T) {
	srv := etcdtest.Start(t)
	first := clustertest.Start(t, externalOptions(t, srv, "node-1"), nil)
	o := externalOptions(t, srv, "node-2")
	o.LeaseTTL = 5 * time.Second
	second := clustertest.Start(t, o, nil)
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(first, second) }, "never agreed")
	held := len(second.GetPartitionsForNode("node-2"))
	second.Halt()
	var mu sync.Mutex
	received := map[string]bool{}
	var events []string
	again := clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
		ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) {
			mu.Lock()
			events = append(events, "rejoin:"+e.Node.ID)
			mu.Unlock()
		})
		ck.OnRebalanceStart(func(e *clusterkit.RebalanceEvent) {
			mu.Lock()
			events = append(events, "start:"+string(e.Trigger))
			mu.Unlock()
		})
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID == "node-2" && len(e.CopyFromNodes) > 0 && e.CopyFromNodes[0].ID == "node-1" {
				mu.Lock()
				received[e.PartitionID] = true
				mu.Unlock()
			}
			return nil
		})
	})
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(first, again) }, "never agreed after restart")
	mu.Lock()
	defer mu.Unlock()
	if len(received) != held {
		t.Fatalf("the restarted node received %d partitions from node-1, want the %d it held", len(received), held)
	}
	if i, j := index(events, "rejoin:node-2"), index(events, "start:"+string(clusterkit.ReasonNodeRejoin)); i < 0 || j < i {
		t.Fatalf("events %v: want rejoin:node-2 before start:node_rejoin", events)
	}
}

// Stop returns within its context when etcd cannot be reached.
func TestStopWhileCutOffFromEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := tcpproxy.Start(t, srv.Endpoints()[0])
	first := clustertest.Start(t, externalOptions(t, srv, "node-1"), nil)
	o := externalOptions(t, srv, "node-2")
	o.Etcd.Endpoints = []string{"http://" + proxy.Addr()}
	second := clustertest.Start(t, o, nil)
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(first, second) }, "never agreed")
	proxy.Cut()
	began := time.Now()
	stopped := make(chan struct{})
	go func() { second.Stop(contextTimeout(t, 2*time.Second)); close(stopped) }()
	select {
	case <-stopped:
		t.Logf("Stop while cut off from etcd returned after %v", time.Since(began))
	case <-time.After(30 * time.Second):
		t.Fatal("Stop hangs while etcd is unreachable")
	}
	halted := time.Now()
	first.Halt()
	t.Logf("Halt with etcd reachable took %v", time.Since(halted))
}
