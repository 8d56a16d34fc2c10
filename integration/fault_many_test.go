package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
	"github.com/clusterkit-go/clusterkit/internal/testbin"
)

// envManyRounds=<n> runs TestManyNodesAtOnce for n rounds instead of
// manyRounds.
const envManyRounds = "CLUSTERKIT_MANY_ROUNDS"

// Many nodes at once (issue 15): the size of the cluster and the default
// number of rounds, kept small enough for CI (2 cores, -race).
const (
	manyNodes  = 20
	manyRounds = 2
)

// TestManyNodesAtOnce starts 20 embedded nodes (3 etcd voters, the others
// plain clients of them) as processes: the first one, which bootstraps the
// cluster, then the other 19 all at once, waits until they agree
// on one settled map, then SIGTERMs all of them together, for a few rounds
// on a fresh cluster each. Every process must exit 0 (its Stop returned
// nil) within 30 s, and no stderr may hold a panic or a fatal error. The
// nodes are built without the race detector (see cknodeFastPath) and with
// a 5 s lease, so that a slow machine does not evict them while they form. How long each exit took (SIGTERM → process gone) and each Stop
// (as the node measured it) are reported, not asserted: the target is
// ≤ 2 s, and the race detector on two shared cores is not the machine to
// hold it to.
func TestManyNodesAtOnce(t *testing.T) {
	rounds := manyRounds
	if s := os.Getenv(envManyRounds); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", envManyRounds, s)
		}
		rounds = n
	}
	var formed, exits, stops []time.Duration
	var bad manyFaults
	for round := 1; round <= rounds && !t.Failed(); round++ {
		f, e, s := manyNodesRound(t, &bad)
		formed = append(formed, f)
		exits, stops = append(exits, e...), append(stops, s...)
		t.Logf("round %d: %d nodes formed in %v; exits after SIGTERM: %s; Stop: %s", round, manyNodes,
			f.Round(time.Millisecond), spreadText(e), spreadText(s))
	}
	over := 0
	for _, e := range exits {
		if e > 2*time.Second {
			over++
		}
	}
	reliability.Summary(t, map[string]any{
		"nodes": manyNodes, "rounds": rounds, "formed": formed, "exit": exits, "stop": stops,
		"exits_over_2s": over, "crashes": bad.crashes, "stop_errors": bad.stopErrs, "no_exit": bad.noExit,
	})
}

// manyFaults counts the processes that did not exit within 30 s, exited
// other than 0 (Stop failed, or a crash) and whose stderr shows a crash.
type manyFaults struct{ noExit, stopErrs, crashes int }

// manyNodesRound runs one round on a fresh cluster and returns how long it
// took to form, and every node's exit and Stop duration; it fails the test
// (and counts in bad) for every process that misbehaved.
func manyNodesRound(t *testing.T, bad *manyFaults) (formed time.Duration, exits, stops []time.Duration) {
	c := newProcCluster(t, "-ttl", "5s", "-partitions", "64", "-rf", "3", "-voters", "3")
	c.bin = cknodeFastPath(t)
	begin := time.Now()
	nodes := []*nodeProc{c.add("n1")}
	for i := 2; i <= manyNodes; i++ {
		nodes = append(nodes, c.spawn(fmt.Sprintf("n%d", i)))
	}
	for _, n := range nodes[1:] {
		n.waitStarted()
	}
	formed = c.waitSettled(nodes, 90*time.Second).Sub(begin)

	exited := make([]time.Duration, len(nodes))
	var wg sync.WaitGroup
	termed := time.Now()
	for _, n := range nodes {
		n.term()
	}
	for i, n := range nodes {
		wg.Go(func() {
			select {
			case <-n.exited:
				exited[i] = time.Since(termed)
			case <-time.After(30 * time.Second):
				exited[i] = -1
			}
		})
	}
	wg.Wait()
	for i, n := range nodes {
		if exited[i] < 0 {
			bad.noExit++
			t.Errorf("%s did not exit within 30 s of SIGTERM\n%s", n.id, n.tail())
			continue
		}
		if n.exit != 0 {
			bad.stopErrs++
			t.Errorf("%s exited %d after SIGTERM: Stop: %s\n%s", n.id, n.exit, n.stopErr(), n.stderrTail())
		}
		if f := stderrFault(n); f != "" {
			bad.crashes++
			t.Errorf("%s's stderr reports %q:\n%s", n.id, f, n.stderrTail())
		}
		if exited[i] > 2*time.Second {
			t.Logf("%s exited %v after SIGTERM (Stop %v)", n.id, exited[i].Round(time.Millisecond), n.stopTook().Round(time.Millisecond))
		}
		exits = append(exits, exited[i])
		stops = append(stops, n.stopTook())
	}
	return formed, exits, stops
}

var (
	cknodeFastOnce sync.Once
	cknodeFastBin  string
	cknodeFastErr  error
)

// cknodeFastPath builds cknode without the race detector, once per test
// binary, next to the race-enabled build (TestMain removes the directory).
// Twenty race-instrumented processes on two shared cores lose their
// leases to CPU starvation, which is not what TestManyNodesAtOnce tests.
func cknodeFastPath(t testing.TB) string {
	t.Helper()
	cknodeFastOnce.Do(func() {
		var dir string
		cknodeFastBin, dir, cknodeFastErr = testbin.Build("./cknode", "cknode")
		if cknodeFastErr == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
	})
	if cknodeFastErr != nil {
		t.Fatal(cknodeFastErr)
	}
	return cknodeFastBin
}

// stderrFault returns the first sign of a crash in n's stderr (a panic,
// a fatal runtime error, a data race), or "".
func stderrFault(n *nodeProc) string {
	data, _ := os.ReadFile(filepath.Join(n.dir, "stderr"))
	for _, s := range []string{"panic:", "fatal error:", "WARNING: DATA RACE"} {
		if strings.Contains(string(data), s) {
			return s
		}
	}
	return ""
}

// spreadText renders the median and range of ds for a log line.
func spreadText(ds []time.Duration) string {
	s := reliability.Spread(ds)
	return fmt.Sprintf("median %.3fs (%.3f–%.3fs, n=%v)", s["median"], s["min"], s["max"], s["n"])
}
