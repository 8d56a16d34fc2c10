//go:build etcdserver

package integration

import (
	"testing"
	"time"
)

// BenchmarkEtcdOutage kills the external etcd (Debian's) for 10 s with
// four node processes running (TTL 2 s), restarts it, and counts what the
// nodes reported: leaves, NoSource, data copies; and the time from etcd's
// return until every node is registered again.
func BenchmarkEtcdOutage(b *testing.B) {
	const ttl = 2 * time.Second
	var back []time.Duration
	leaves, noSrc, copies := 0, 0, 0
	for b.Loop() {
		etcd, c, nodes := formFourExternal(b, ttl)
		begin := time.Now()
		etcd.kill()
		time.Sleep(10 * time.Second)
		etcd.start()
		returned := time.Now()
		c.waitRegistered(nodes, 60*time.Second)
		back = append(back, time.Since(returned))
		time.Sleep(2 * ttl)
		c.waitSettled(nodes, 60*time.Second)
		recs := c.log.since(begin)
		leaves += len(leavesOf(recs))
		noSrc += len(noSource(recs))
		copies += len(moves(recs))
		c.killAll()
		etcd.kill()
	}
	b.ReportMetric(percentile(back, 50), "registered-p50-ms")
	b.ReportMetric(float64(leaves), "leaves")
	b.ReportMetric(float64(noSrc), "nosource")
	b.ReportMetric(float64(copies), "copies")
}
