package linearizability

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.uber.org/goleak"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
	"github.com/clusterkit-go/clusterkit/internal/testbin"
)

// envSoak=<duration> repeats the rounds of scenarios for that long.
const envSoak = "CLUSTERKIT_LINEARIZABILITY_SOAK"

// Cluster and workload.
const (
	nodes      = 5 // node-1 … node-3 are etcd voters
	partitions = 16
	leaseTTL   = 2 * time.Second
	clients    = 6
	keys       = 12
	rounds     = 2 // rounds of scenarios at least (the soak may run more)
)

// kvstoreBinary is the kvstore command, built once by TestMain without the
// race detector (ten instrumented processes would starve a small machine).
var kvstoreBinary string

func TestMain(m *testing.M) {
	bin, dir, err := testbin.Build("github.com/clusterkit-go/clusterkit/examples/kvstore", "kvstore")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kvstoreBinary = bin
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// TestLinearizableUnderFaults records what concurrent clients see while the
// scenarios run, and checks with porcupine that the history is
// linearizable per key (a register: get returns the last put, "" after a
// delete). A write whose outcome the client could not tell may take effect
// at any point after its call, or never; a call refused before it changed
// anything is left out. The final reads of every key make a lost
// acknowledged write a violation. On a violation the history and
// porcupine's visualization are left in a directory named in the failure,
// and the nodes' logs in another.
func TestLinearizableUnderFaults(t *testing.T) {
	var soak time.Duration
	if s := os.Getenv(envSoak); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSoak, s, err)
		}
		soak = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute+soak)
	defer cancel()
	f, keepLogs := startFaultCluster(ctx, t)
	w := f.w

	traffic, stopTraffic := context.WithCancel(ctx)
	w.start(traffic, clients)
	began := time.Now()
	var faultErr error
	took := map[string][]time.Duration{}
	for f.round = 0; faultErr == nil; f.round++ {
		for _, s := range scenarios() {
			if err := sleep(ctx, time.Second); err != nil {
				faultErr = err
				break
			}
			t.Logf("round %d: %s", f.round+1, s.name)
			sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			from, start := w.h.now(), time.Now()
			err := s.run(f, sctx)
			cancel()
			took[s.name] = append(took[s.name], time.Since(start))
			t.Logf("  longest time without an acknowledged write: %v", w.h.longestWriteGap(from, w.h.now()).Round(time.Millisecond))
			if err != nil {
				faultErr = fmt.Errorf("round %d, %s: %w", f.round+1, s.name, err)
				if s.libraryFault != "" {
					faultErr = fmt.Errorf("%w\n(this scenario reproduced a library fault until it was fixed: %s)", faultErr, s.libraryFault)
				}
				break
			}
		}
		if f.round+1 >= rounds && time.Since(began) >= soak {
			break
		}
	}
	sleep(ctx, time.Second)
	stopTraffic()
	figures := map[string]any{}
	for name, ds := range took {
		figures["until settled: "+name] = ds
	}
	checkHistory(t, f, faultErr, keepLogs, figures)
}

// startFaultCluster starts the nodes and the workload's history (not its
// clients) and waits until the nodes agree. The nodes' logs are removed at
// the end of the test unless it failed or *keepLogs was set.
func startFaultCluster(ctx context.Context, t *testing.T) (*faults, *bool) {
	logs, err := os.MkdirTemp("", "kvstore-linearizability-logs-")
	if err != nil {
		t.Fatal(err)
	}
	events := &localcluster.EventLog{}
	c, err := localcluster.New(localcluster.Options{Command: localcluster.Command{Path: kvstoreBinary}, Dir: logs,
		Mode: store.ModeSync, Partitions: partitions, LeaseTTL: leaseTTL, Events: events.Add})
	if err != nil {
		t.Fatal(err)
	}
	keepLogs := new(bool)
	t.Cleanup(func() {
		c.Close()
		if *keepLogs || t.Failed() {
			t.Logf("node logs: %s", logs)
		} else {
			os.RemoveAll(logs)
		}
	})
	for i := 1; i <= nodes; i++ {
		if _, err := c.Start(ctx, fmt.Sprintf("node-%d", i)); err != nil {
			t.Fatal(err)
		}
		// node-1 … node-3 start as the etcd voters: a later node must
		// not win a seat from a slow join.
		if i == len(voters) {
			if _, err := waitVoters(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := &faults{t: t, cluster: c, events: events, w: newWorkload(c, keys), next: nodes + 1}
	if err := f.settle(ctx, fmt.Sprintf("%d nodes formed", nodes)); err != nil {
		t.Fatal(err)
	}
	return f, keepLogs
}

// checkHistory waits for the clients (already told to stop), reads every
// key once more unless a fault failed, and checks the history with
// porcupine, failing the test on a violation or on faultErr. It writes a
// reliability summary line with figures and the history's counts.
func checkHistory(t *testing.T, f *faults, faultErr error, keepLogs *bool, figures map[string]any) {
	w := f.w
	w.wait()
	if faultErr == nil {
		if err := w.readAll(); err != nil {
			faultErr = err
		}
	}

	h := w.h
	if _, ok := figures["rounds"]; !ok {
		figures["rounds"] = f.round + 1
	}
	t.Logf("history: %d operations in %v rounds — %d writes acknowledged, %d writes with unknown outcome, %d reads, %d calls refused before applying",
		len(h.ops), figures["rounds"], h.acked, h.unknown, h.reads, h.refused)
	checkStart := time.Now()
	res, dir, err := h.check(2 * time.Minute)
	t.Logf("porcupine: %s in %v", res, time.Since(checkStart).Round(time.Millisecond))
	switch {
	case err != nil:
		t.Errorf("writing the history: %v", err)
	case res == porcupine.Illegal:
		*keepLogs = true
		t.Errorf("the history is not linearizable; history and visualization in %s (open history.html)", dir)
	case res == porcupine.Unknown:
		*keepLogs = true
		t.Errorf("porcupine did not finish the check in time; history in %s", dir)
	case faultErr == nil:
		t.Logf("linearizable, final reads included: 0 acknowledged writes lost")
	}
	figures["operations"], figures["writes_acked"], figures["reads"] = len(h.ops), h.acked, h.reads
	figures["writes_unknown"], figures["refused"] = h.unknown, h.refused
	figures["linearizable"] = res == porcupine.Ok && faultErr == nil
	reliability.Summary(t, figures)
	if faultErr != nil {
		*keepLogs = true
		t.Errorf("a fault scenario failed: %v", faultErr)
	}
}
