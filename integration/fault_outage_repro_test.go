//go:build etcdserver && faultrepro

package integration

import (
	"testing"
	"time"
)

// TestEtcdOutageKeepsData kills the external etcd for 10×TTL while every
// node process keeps running, then restarts it: every node kept its data,
// so no partition may be handed out without a source and none may move
// (issue 9). It fails on the code before the fix: every node registers
// anew and every partition goes NoSource.
func TestEtcdOutageKeepsData(t *testing.T) {
	const ttl = 2 * time.Second
	etcd := startEtcd(t)
	c := newProcCluster(t, "-ttl", ttl.String(), "-partitions", "64", "-rf", "3")
	c.etcd = etcd.endpoints()[0]
	var nodes []*nodeProc
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		nodes = append(nodes, c.add(id))
	}
	c.waitSettled(nodes, 60*time.Second)

	begin := time.Now()
	etcd.kill()
	time.Sleep(10 * ttl)
	etcd.start()
	back := time.Now()
	done := c.waitSettled(nodes, 60*time.Second)
	recs := c.log.since(begin)
	t.Logf("etcd down %v: settled %v after it returned; records: %s", back.Sub(begin), done.Sub(back), summary(recs))
	if l := noSource(recs); len(l) > 0 {
		t.Errorf("partitions handed out without a source although every process kept its data: %d\n%s", len(l), limit(l, 10))
	}
	if m := moves(recs); len(m) > 0 {
		t.Errorf("%d partition changes copied data after an outage in which no process lost any", len(m))
	}
	if l := primaryConflicts(recs); len(l) > 0 {
		t.Errorf("two primaries for one (partition, epoch): %d\n%s", len(l), limit(l, 10))
	}
}
