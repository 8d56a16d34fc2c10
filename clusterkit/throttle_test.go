package clusterkit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// mapWatch records the incoming handoffs of every partition map written to
// etcd (a superset of the maps any node observes).
type mapWatch struct {
	mu       sync.Mutex
	maps     int
	maxTotal int
	maxNode  int
	err      error
}

func watchMaps(t *testing.T, srv *etcdtest.Server, partitions int) *mapWatch {
	cli := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := &mapWatch{}
	done := make(chan struct{})
	mw := clusterkit.NewMapWatcher("default", partitions)
	// The map as it is now, then every later write.
	cur, err := cli.Get(ctx, clusterkit.MapPrefix("default"), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var initial []*clientv3.Event
	for _, kv := range cur.Kvs {
		initial = append(initial, &clientv3.Event{Type: clientv3.EventTypePut, Kv: kv})
	}
	if _, _, _, err := mw.Apply(initial); err != nil {
		t.Fatal(err)
	}
	ch := cli.Watch(ctx, clusterkit.MapPrefix("default"), clientv3.WithPrefix(), clientv3.WithRev(cur.Header.Revision+1))
	go func() {
		defer close(done)
		for resp := range ch {
			// A Txn's events share one revision: apply them together.
			for i := 0; i < len(resp.Events); {
				j := i
				for j < len(resp.Events) && resp.Events[j].Kv.ModRevision == resp.Events[i].Kv.ModRevision {
					j++
				}
				ok, total, perNode, err := mw.Apply(resp.Events[i:j])
				i = j
				w.mu.Lock()
				if ok {
					w.maps++
				}
				w.err = errors.Join(w.err, err)
				w.maxTotal = max(w.maxTotal, total)
				for _, n := range perNode {
					w.maxNode = max(w.maxNode, n)
				}
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *mapWatch) peaks() (maps, total, node int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maps, w.maxTotal, w.maxNode, w.err
}

func TestThrottledJoinMovesInWaves(t *testing.T) {
	for _, tc := range []struct {
		name           string
		total, perNode int
	}{
		{"cluster-wide 3", 3, 0},
		{"per node 1", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := etcdtest.Start(t)
			limit := func(o *clusterkit.Options) {
				o.MaxConcurrentMoves, o.MaxConcurrentMovesPerNode = tc.total, tc.perNode
				o.PartitionCount = 32
			}
			var nodes []*clusterkit.ClusterKit
			start := func(i int) {
				o := externalOptions(t, srv, fmt.Sprintf("node-%d", i))
				limit(&o)
				nodes = append(nodes, clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
					// A handoff takes a while, so that moves overlap.
					ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
						if e.CopyToNode.ID == ck.GetMyNodeID() && !e.Promoted {
							time.Sleep(20 * time.Millisecond)
						}
						return nil
					})
				}))
			}
			start(1)
			w := watchMaps(t, srv, 32)
			for i := 2; i <= 5; i++ {
				start(i)
			}
			clustertest.Eventually(t, 60*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "the throttled joins never completed")
			maps, total, node, err := w.peaks()
			if err != nil {
				t.Fatalf("undecodable map: %v", err)
			}
			t.Logf("%d maps written; at most %d incoming in one map, %d to one node", maps, total, node)
			if tc.total > 0 && total > tc.total {
				t.Fatalf("a map had %d incoming handoffs, want at most MaxConcurrentMoves = %d", total, tc.total)
			}
			if tc.perNode > 0 && node > tc.perNode {
				t.Fatalf("a map had %d incoming handoffs to one node, want at most MaxConcurrentMovesPerNode = %d", node, tc.perNode)
			}
			if total == 0 {
				t.Fatal("no map had an incoming handoff: the test moved nothing")
			}
		})
	}
}

func TestMoveLimitOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(*clusterkit.Options)
		field string
	}{
		{"total", func(o *clusterkit.Options) { o.MaxConcurrentMoves = -1 }, "MaxConcurrentMoves"},
		{"per node", func(o *clusterkit.Options) { o.MaxConcurrentMovesPerNode = -2 }, "MaxConcurrentMovesPerNode"},
		{"handoff timeout", func(o *clusterkit.Options) { o.HandoffTimeout = -time.Second }, "HandoffTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := clustertest.Options(t, "node-1")
			tc.set(&o)
			_, err := clusterkit.New(o)
			if !errors.Is(err, clusterkit.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "-") {
				t.Fatalf("got %v, want ErrInvalidOptions naming %s and the value", err, tc.field)
			}
		})
	}
}
