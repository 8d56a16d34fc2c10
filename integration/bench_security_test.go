package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
)

// Benchmarks of issue 14: what security costs. Each runs twice, with the
// default (secure: TLS between members, certificates through the join)
// and with Options.InsecurePlaintext; the target is formation and
// join within +20% and unchanged lookups (0 allocs, same ns/op). Run with
// -bench 'Security' -benchtime 5x.

// securityModes are the two sub-benchmarks: tls=on is the default.
var securityModes = []struct {
	name      string
	plaintext bool
}{{"tls=on", false}, {"tls=off", true}}

// BenchmarkSecurityFormation3 forms a 3-node embedded cluster from
// nothing to one agreed map per iteration (bootstrap with CA creation,
// two joins); the Stop of all three is not timed.
func BenchmarkSecurityFormation3(b *testing.B) {
	for _, mode := range securityModes {
		b.Run(mode.name, func(b *testing.B) {
			benchFormation3(b, func(o *clusterkit.Options) { o.InsecurePlaintext = mode.plaintext })
		})
	}
}

// BenchmarkSecurityJoin joins a fourth embedded node through JoinAddr
// (token check, CSR signed, etcd client over mTLS when secure) to a
// 3-node cluster: start = its Start call (the join), agree = from Start
// returning until all four agree on a settled map. It leaves untimed.
func BenchmarkSecurityJoin(b *testing.B) {
	for _, mode := range securityModes {
		b.Run(mode.name, func(b *testing.B) {
			plain := func(o *clusterkit.Options) { o.InsecurePlaintext = mode.plaintext }
			nodes := clustertest.Form(b, 3, plain, nil)
			var starts, agrees []time.Duration
			for i := 0; b.Loop(); i++ {
				o := clustertest.Options(b, fmt.Sprintf("joiner-%d", i))
				o.JoinAddr = clustertest.Addr(nodes[0])
				if tok, err := nodes[0].JoinToken(); err == nil { // secure: the pinned token, as in production
					o.ClusterToken = tok
				}
				plain(&o)
				start, agree := joinTimed(b, nodes, o)
				starts, agrees = append(starts, start), append(agrees, agree)
			}
			b.ReportMetric(percentile(starts, 50), "start-p50-ms")
			b.ReportMetric(percentile(starts, 100), "start-max-ms")
			b.ReportMetric(percentile(agrees, 50), "agree-p50-ms")
			b.ReportMetric(percentile(agrees, 100), "agree-max-ms")
		})
	}
}

// BenchmarkSecurityLookup asks a started node (one-node embedded cluster)
// key → partition → primary: TLS must not reach the hot path.
func BenchmarkSecurityLookup(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%08d", i)
	}
	for _, mode := range securityModes {
		b.Run(mode.name, func(b *testing.B) {
			o := clustertest.Options(b, "node-1")
			o.InsecurePlaintext = mode.plaintext
			ck := clustertest.Start(b, o, nil)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p, err := ck.GetPartition(keys[i%len(keys)])
				if err != nil || ck.GetPrimary(p) == nil {
					b.Fatalf("lookup: %v", err)
				}
			}
		})
	}
}
