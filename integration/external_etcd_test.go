//go:build etcdserver

package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/watcher"

	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
)

func externalNode(t *testing.T, etcd *etcdProcess, id string, leaves *leaveLog) *clusterkit.ClusterKit {
	o := clustertest.Options(t, id)
	o.Etcd.Endpoints = etcd.endpoints()
	o.LeaseTTL = 2 * time.Second // Debian's etcd keeps its default minimum TTL math; 2 s is safe
	return clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
		if leaves != nil {
			ck.OnNodeLeave(func(e *clusterkit.NodeLeaveEvent) { leaves.add(ck.GetMyNodeID(), e) })
		}
	})
}

type leaveLog struct {
	mu sync.Mutex
	m  map[string][]string // observer → "node:reason"
}

func (l *leaveLog) add(observer string, e *clusterkit.NodeLeaveEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string][]string{}
	}
	l.m[observer] = append(l.m[observer], e.Node.ID+":"+string(e.Reason))
}

func (l *leaveLog) saw(observer, what string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.m[observer], what)
}

// TestDebianEtcdCluster runs a 4-node cluster on Debian's etcd-server
// 3.4 (a build no one here made): formation, a graceful leave, a crash.
func TestDebianEtcdCluster(t *testing.T) {
	etcd := startEtcd(t)
	leaves := &leaveLog{}
	var nodes []*clusterkit.ClusterKit
	for i := 1; i <= 4; i++ {
		nodes = append(nodes, externalNode(t, etcd, fmt.Sprintf("node-%d", i), leaves))
	}
	clustertest.Eventually(t, 20*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "4 nodes never agreed")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[3].Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	crashed := time.Now()
	nodes[2].Halt()
	for _, n := range nodes[:2] {
		id := n.GetMyNodeID()
		clustertest.Eventually(t, 15*time.Second, func() bool {
			return leaves.saw(id, "node-4:"+string(clusterkit.LeaveGraceful)) && leaves.saw(id, "node-3:"+string(clusterkit.LeaveLeaseExpired))
		}, "%s did not see both leaves", id)
	}
	t.Logf("crash → OnNodeLeave on the survivors: %v (lease TTL 2s, etcd 3.4)", time.Since(crashed))
	reliability.Summary(t, map[string]any{"crash_seen_by_all": time.Since(crashed), "lease_ttl": 2 * time.Second})
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(nodes[:2]...) }, "survivors never agreed")
}

// TestEtcdOutage kills the etcd process under a running cluster: lookups
// keep answering from the last map, health turns critical, and after
// etcd is back (same data) the nodes recover without a restart.
func TestEtcdOutage(t *testing.T) {
	etcd := startEtcd(t)
	var nodes []*clusterkit.ClusterKit
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, externalNode(t, etcd, fmt.Sprintf("node-%d", i), nil))
	}
	clustertest.Eventually(t, 20*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "never agreed")
	before := nodes[0].GetCluster()

	etcd.kill()
	for _, n := range nodes {
		clustertest.Eventually(t, 10*time.Second, func() bool { return n.HealthCheck().Status == clusterkit.HealthCritical },
			"%s never reported critical without etcd", n.GetMyNodeID())
		p, err := n.GetPartition("some-key")
		if err != nil || n.GetPrimary(p) == nil {
			t.Fatalf("%s: lookups stopped answering during the outage: %v", n.GetMyNodeID(), err)
		}
		if n.GetCluster().AssignmentVersion != before.AssignmentVersion {
			t.Fatalf("%s: the map changed during the outage", n.GetMyNodeID())
		}
	}
	etcd.start()
	for _, n := range nodes {
		clustertest.Eventually(t, 30*time.Second, func() bool { return n.HealthCheck().Status == clusterkit.HealthHealthy },
			"%s never recovered after etcd came back: %+v", n.GetMyNodeID(), n.HealthCheck())
	}
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "never agreed after the outage")
}

// TestWatcherCatchUpOnEtcd34 writes while a watcher's consumer is not
// reading, against etcd 3.4.23, whose progress notifications may run ahead
// of a catching-up watch (etcd #15220): every put must still arrive, once,
// in order.
func TestWatcherCatchUpOnEtcd34(t *testing.T) {
	etcd := startEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := watcher.Watch(ctx, cli, "/catchup/", watcher.WithProgressInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const puts = 3000
	for i := range puts {
		if _, err := cli.Put(ctx, fmt.Sprintf("/catchup/k%d", i%100), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // progress ticks while the consumer lags
	got, last := 0, int64(0)
	for got < puts {
		select {
		case b, ok := <-w.Batches():
			if !ok {
				t.Fatalf("watcher stopped after %d puts: %v", got, w.Err())
			}
			if b.Initial {
				continue
			}
			if b.Revision <= last {
				t.Fatalf("batch at revision %d after %d", b.Revision, last)
			}
			last = b.Revision
			got += len(b.Events)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d puts arrived", got, puts)
		}
	}
}
