package integration

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Benchmarks of issue 10 (embedded etcd across restarts and stops), on
// real node processes built with -race (slower than production builds).
// Every iteration forms a new cluster (not timed); the metrics are
// medians (p50) and maxima in milliseconds over the iterations. Run with
// e.g. -bench 'VoterStop|RollingRestart|QuorumLoss|StopAll' -benchtime 5x.

// onFreshClusters runs one benchmark iteration per b.Loop on a new
// cluster of n embedded nodes (formed untimed); with voters > 0, etcd must
// have that many voters and no learner afterwards (checked untimed).
func onFreshClusters(b *testing.B, n, voters int, iteration func(tb testing.TB, c *procCluster, nodes []*nodeProc)) {
	for b.Loop() {
		b.StopTimer()
		tb := &cleanupTB{TB: b}
		c, nodes := formEmbedded(tb, n)
		b.StartTimer()
		iteration(tb, c, nodes)
		b.StopTimer()
		if voters > 0 {
			checkVoters(tb, nodes, voters)
		}
		tb.runCleanups()
		b.StartTimer()
	}
}

// BenchmarkVoterStop stops an etcd voter of a 4-node cluster gracefully:
// how long its Stop takes and how long until the other three agree on a
// settled map without it (others-settled), measured from SIGTERM.
func BenchmarkVoterStop(b *testing.B) {
	var stops, settled []time.Duration
	onFreshClusters(b, 4, 0, func(tb testing.TB, c *procCluster, nodes []*nodeProc) {
		voters, _ := etcdRoles(tb, nodes)
		victim := voters[1] // not the bootstrap node
		begin := time.Now()
		victim.term()
		done := c.waitSettled(slices.DeleteFunc(slices.Clone(nodes), func(n *nodeProc) bool { return n == victim }), 60*time.Second)
		settled = append(settled, done.Sub(begin))
		victim.waitCleanExit(tb)
		stops = append(stops, victim.stopTook())
	})
	b.ReportMetric(percentile(stops, 50), "stop-p50-ms")
	b.ReportMetric(percentile(stops, 100), "stop-max-ms")
	b.ReportMetric(percentile(settled, 50), "others-settled-p50-ms")
	b.ReportMetric(percentile(settled, 100), "others-settled-max-ms")
}

// BenchmarkRollingRestart stops and restarts every node of a 4-node
// cluster in turn (3 etcd voters), each with its original options: a step
// is SIGTERM → exit → restart → Start returned → all four agree again. At
// the end etcd must have 3 voters and no learner.
func BenchmarkRollingRestart(b *testing.B) {
	var steps []time.Duration
	onFreshClusters(b, 4, 3, func(tb testing.TB, c *procCluster, nodes []*nodeProc) {
		for _, n := range nodes {
			begin := time.Now()
			n.gracefulStop(tb)
			n.restart(c.bin)
			n.waitStarted()
			steps = append(steps, c.waitSettled(nodes, 60*time.Second).Sub(begin))
		}
	})
	b.ReportMetric(percentile(steps, 50), "step-p50-ms")
	b.ReportMetric(percentile(steps, 100), "step-max-ms")
}

// BenchmarkQuorumLossRestart SIGKILLs two of the three etcd voters of a
// 4-node cluster and restarts both together with their original options:
// the time from the second start until all four agree (the kills are
// timed too, they take milliseconds).
func BenchmarkQuorumLossRestart(b *testing.B) {
	var agree []time.Duration
	onFreshClusters(b, 4, 3, func(tb testing.TB, c *procCluster, nodes []*nodeProc) {
		voters, _ := etcdRoles(tb, nodes)
		victims := voters[1:]
		for _, n := range victims {
			n.kill()
		}
		for _, n := range victims {
			n.restart(c.bin)
		}
		begin := time.Now()
		var wg sync.WaitGroup
		for _, n := range victims {
			wg.Go(n.waitStarted)
		}
		wg.Wait()
		agree = append(agree, c.waitSettled(nodes, 60*time.Second).Sub(begin))
	})
	b.ReportMetric(percentile(agree, 50), "agree-p50-ms")
	b.ReportMetric(percentile(agree, 100), "agree-max-ms")
}

// BenchmarkStopAllAtOnce SIGTERMs eight embedded nodes together, one
// round per iteration: the exits that were not 0 (failed-exits; a panic
// is exit 2, counted in panics too) and the Stop durations.
func BenchmarkStopAllAtOnce(b *testing.B) {
	var stops, rounds []time.Duration
	failed, panics := 0, 0
	onFreshClusters(b, 8, 0, func(tb testing.TB, c *procCluster, nodes []*nodeProc) {
		begin := time.Now()
		for _, n := range nodes {
			n.term()
		}
		for _, n := range nodes {
			code := n.waitExit(30 * time.Second)
			if code != 0 {
				failed++
				b.Logf("%s exited %d: Stop: %s\n%s", n.id, code, n.stopErr(), n.stderrTail())
			}
			if code == 2 {
				panics++
			}
			stops = append(stops, n.stopTook())
		}
		rounds = append(rounds, time.Since(begin))
	})
	b.ReportMetric(float64(failed), "failed-exits")
	b.ReportMetric(float64(panics), "panics")
	b.ReportMetric(percentile(stops, 50), "stop-p50-ms")
	b.ReportMetric(percentile(stops, 100), "stop-max-ms")
	b.ReportMetric(percentile(rounds, 50), "all-exited-p50-ms")
	b.ReportMetric(percentile(rounds, 100), "all-exited-max-ms")
}
