package integration

import (
	"testing"
	"time"
)

// Benchmarks of issue 9's scenarios on real node processes (four nodes on
// embedded etcd, LeaseTTL 2 s, 64 partitions, RF 3, rebalance delay 30 s).
// Each iteration forms a new cluster; run with -benchtime=Nx. Times are
// medians over the iterations, in milliseconds; counts are totals.

// firstPromotion returns the time from begin to the first replica promoted
// (a failover) in recs, or 0.
func firstPromotion(recs []record, begin time.Time) time.Duration {
	if at := first(recs, func(r record) bool { return r.Kind == "change" && r.Promoted }); !at.IsZero() {
		return at.Sub(begin)
	}
	return 0
}

// BenchmarkFrozenVoter freezes a node that hosts an etcd voter (not the
// etcd leader) for 2×TTL: leave seen, map repaired (first failover seen),
// collateral leaves, NoSource, copies to nodes that never left.
func BenchmarkFrozenVoter(b *testing.B) {
	const ttl = 2 * time.Second
	var leave, repaired []time.Duration
	collateral, noSrc, others := 0, 0, 0
	for b.Loop() {
		c, nodes := formFour(b, ttl)
		victim := voterNotLeading(b, nodes)
		begin := time.Now()
		res := freezeFor(b, c, nodes, 2*ttl, victim)
		leave = append(leave, res.leaveSeen)
		repaired = append(repaired, firstPromotion(res.recs, begin))
		collateral += len(leavesOf(res.recs, victim.id))
		noSrc += len(noSource(res.recs))
		others += len(movesToOthers(res.recs, victim.id))
		c.killAll()
	}
	b.ReportMetric(percentile(leave, 50), "leave-p50-ms")
	b.ReportMetric(percentile(repaired, 50), "repaired-p50-ms")
	b.ReportMetric(percentile(repaired, 100), "repaired-max-ms")
	b.ReportMetric(float64(collateral), "collateral-leaves")
	b.ReportMetric(float64(noSrc), "nosource")
	b.ReportMetric(float64(others), "copies-to-others")
}

// BenchmarkKilledBackWithinDelay SIGKILLs the plain node and restarts it
// 1 s after the failover: failover time, replica copies to other nodes,
// NoSource.
func BenchmarkKilledBackWithinDelay(b *testing.B) {
	const ttl = 2 * time.Second
	var failover []time.Duration
	noSrc, others := 0, 0
	for b.Loop() {
		c, nodes := formFour(b, ttl)
		_, plain := etcdRoles(b, nodes)
		victim := plain[0]
		begin := time.Now()
		victim.kill()
		deadline := time.Now().Add(15 * time.Second)
		for firstPromotion(c.log.since(begin), begin) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		failover = append(failover, firstPromotion(c.log.since(begin), begin))
		time.Sleep(time.Second)
		victim.restart(c.bin)
		victim.waitStarted()
		c.waitSettled(nodes, 60*time.Second)
		recs := c.log.since(begin)
		noSrc += len(noSource(recs))
		others += len(movesToOthers(recs, victim.id))
		c.killAll()
	}
	b.ReportMetric(percentile(failover, 50), "failover-p50-ms")
	b.ReportMetric(percentile(failover, 100), "failover-max-ms")
	b.ReportMetric(float64(others), "copies-to-others")
	b.ReportMetric(float64(noSrc), "nosource")
}
