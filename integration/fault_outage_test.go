//go:build etcdserver

package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
)

// TestEtcdOutageKeepsData kills the external etcd for 10×TTL while every
// node process keeps running, then restarts it: every node kept its data,
// so no partition may be handed out without a source and none may move
// (issue 9). Before the fix every node registered anew and every
// partition went NoSource.
func TestEtcdOutageKeepsData(t *testing.T) {
	const ttl = 2 * time.Second
	etcd, c, nodes := formFourExternal(t, ttl)

	begin := time.Now()
	etcd.kill()
	time.Sleep(10 * ttl)
	etcd.start()
	back := time.Now()
	c.waitRegistered(nodes, 60*time.Second)
	registered := time.Now()
	// Give the leader two TTLs to act on whatever it saw, then settle.
	time.Sleep(2 * ttl)
	c.waitSettled(nodes, 60*time.Second)
	recs := c.log.since(begin)
	t.Logf("etcd down %v: every node registered %v after it returned; records: %s",
		back.Sub(begin), registered.Sub(back), summary(recs))
	reliability.Summary(t, map[string]any{"etcd_down": back.Sub(begin), "registered_after_return": registered.Sub(back),
		"maps_observed": countKind(recs, "map"), "no_source": len(noSource(recs)), "moves": len(moves(recs))})
	if l := noSource(recs); len(l) > 0 {
		t.Errorf("partitions handed out without a source although every process kept its data: %d\n%s", len(l), limit(l, 10))
	}
	if m := moves(recs); len(m) > 0 {
		t.Errorf("%d partition changes copied data after an outage in which no process lost any", len(m))
	}
	for _, n := range nodes {
		for _, r := range rejoinsOf(recs, n.id) {
			if !r.Same || !r.Kept {
				t.Errorf("%s saw %s rejoin as another process; it kept running", r.Self, n.id)
			}
		}
	}
	if l := primaryConflicts(recs); len(l) > 0 {
		t.Errorf("two primaries for one (partition, epoch): %d\n%s", len(l), limit(l, 10))
	}
}

// formFourExternal starts an external etcd (CLUSTERKIT_ETCD_BIN) and four
// node processes on it: LeaseTTL ttl, 64 partitions, RF 3, rebalance
// delay faultDelay; it returns once they settled.
func formFourExternal(t testing.TB, ttl time.Duration) (*etcdProcess, *procCluster, []*nodeProc) {
	etcd := startEtcd(t)
	c := newProcCluster(t, "-ttl", ttl.String(), "-partitions", "64", "-rf", "3", "-rebalance-delay", faultDelay.String())
	c.etcd = etcd.endpoints()[0]
	var nodes []*nodeProc
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		nodes = append(nodes, c.add(id))
	}
	c.waitSettled(nodes, 60*time.Second)
	return etcd, c, nodes
}

// registered reports whether node n says it holds its membership and is in
// touch with etcd (GET /health/detailed).
func (n *nodeProc) registered() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.http+"/health/detailed", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct {
		Registered    bool `json:"registered"`
		EtcdConnected bool `json:"etcd_connected"`
	}
	return json.NewDecoder(resp.Body).Decode(&h) == nil && h.Registered && h.EtcdConnected
}

// waitRegistered waits until every node is registered and in touch with etcd.
func (c *procCluster) waitRegistered(nodes []*nodeProc, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, n := range nodes {
			all = all && n.registered()
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes not registered again within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
