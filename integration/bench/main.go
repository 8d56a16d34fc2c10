// Command bench measures the whole system on this machine and prints
// Markdown tables with the median and spread of every figure over
// repeated trials, next to the original ClusterKit's published figures
// and its figures measured here (issue 15):
//
//	lookups          GetPartition on one goroutine, on every core, and
//	                 while a node joins and leaves over and over (in this
//	                 process: 10 nodes, clients of one embedded etcd)
//	formation        3 kvstore processes (embedded etcd, 3 voters), and 10
//	                 in every fault trial, from the first process start
//	                 until all agree
//	faults           on a fresh 10-node cluster per trial: join → all
//	                 agree and the rebalance's duration, SIGKILL → seen /
//	                 failed over / repaired, SIGSTOP → seen / repaired /
//	                 back after SIGCONT, leader handover after a SIGKILL and
//	                 after a graceful stop
//	memory           RSS and private (anonymous) memory of the processes:
//	                 an embedded-etcd voter, a node while its member is a
//	                 learner (learner.go), a plain client of the voters
//	                 (roles as GET /cluster names them), a client of an
//	                 external etcd, and the floor: a bare etcd client
//	                 process without ClusterKit (etcdfloor, floor.go)
//	KV throughput    integration/kvbench, run as it is (one trial)
//	scale            integration/scalebench, run as it is: formation, join
//	                 → agree (the rebalance at that size) and crash →
//	                 repaired at 10 nodes × 1,024 partitions (-large: 50
//	                 and 100 too)
//
// The nodes are examples/kvstore processes (this program run again as a
// node), on loopback. The default run takes about 10 minutes on 2 cores;
// -large adds formation of 50 processes and the scale table at 50 and 100
// nodes. A failed trial or a failed KV or scale run is reported in the
// output and makes the exit status 1; the other measures still run.
//
//	go run ./integration/bench
//	go run ./integration/bench -large -trials 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
	"github.com/clusterkit-go/clusterkit/integration/internal/machine"
)

// config is the command's flags.
type config struct {
	trials     int
	ttl        time.Duration
	formation  []int
	scaleNodes string
	kvDuration time.Duration
	skipKV     bool
	skipScale  bool
}

func main() {
	localcluster.RunChildIfRequested()
	var c config
	var large bool
	var formation string
	flag.IntVar(&c.trials, "trials", 3, "trials of every measure")
	flag.DurationVar(&c.ttl, "ttl", 2*time.Second, "lease TTL of the kvstore nodes")
	flag.StringVar(&formation, "formation", "3", "comma-separated cluster sizes whose formation is timed (10 is timed in every fault trial)")
	flag.StringVar(&c.scaleNodes, "scale", "10", "node counts of the scale table (integration/scalebench -nodes)")
	flag.DurationVar(&c.kvDuration, "kv-duration", 5*time.Second, "measured time per KV mode (integration/kvbench -duration)")
	flag.BoolVar(&large, "large", false, "also form 50 processes and run the scale table at 50 and 100 nodes")
	flag.BoolVar(&c.skipKV, "skip-kv", false, "skip the KV throughput table")
	flag.BoolVar(&c.skipScale, "skip-scale", false, "skip the scale table")
	flag.Parse()
	for f := range strings.SplitSeq(formation, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-formation: %q is not a positive integer", f))
		}
		c.formation = append(c.formation, n)
	}
	if c.trials < 1 {
		fail(fmt.Errorf("-trials must be at least 1, got %d", c.trials))
	}
	if large {
		c.formation = append(c.formation, 50)
		c.scaleNodes += ",50,100"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fail(err)
	}
}

func run(ctx context.Context, c config) error {
	began := time.Now()
	fmt.Printf("# ClusterKit benchmarks\n\nmachine: %s, %d cores (GOMAXPROCS %d), %s %s/%s; %d trials per measure; lease TTL %v\n\n",
		machine.CPUModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, c.trials, c.ttl)
	rows, err := clusterRows(ctx, c)
	if err != nil {
		return err
	}
	fmt.Println("## Lookups, formation, faults, memory")
	fmt.Println()
	printRows(rows)
	var failed []error
	if !c.skipKV {
		if err := runTool(ctx, "KV store throughput (integration/kvbench, 10 nodes, 64 partitions, RF 3, one trial)",
			"./integration/kvbench", "-duration", c.kvDuration.String(), "-warmup", "1s"); err != nil {
			fmt.Printf("\n**failed: %v**\n", err)
			failed = append(failed, err)
		}
		fmt.Println()
		fmt.Println("The original's published throughput (8 cores): sync write 3,750 ops/s (p50 8 ms, p99 25 ms), async write 12,500 ops/s (2 ms, 8 ms), local read 10,862 ops/s (1 ms, 3 ms), forwarded read 8,200 ops/s (3 ms, 12 ms).")
	}
	if !c.skipScale {
		if err := runTool(ctx, "Scale (integration/scalebench, plain clients of one etcd in one process, 1,024 partitions, RF 3)",
			"./integration/scalebench", "-nodes", c.scaleNodes, "-trials", strconv.Itoa(c.trials), "-timeout", "3m"); err != nil {
			fmt.Printf("\n**failed: %v** (its progress on stderr says where)\n", err)
			failed = append(failed, err)
		}
		fmt.Println()
		fmt.Println("The original's published rebalance time: 2 s at 3 nodes, 8 s at 10, 45 s at 50, 120 s at 100 (memory 15, 25, 80, 150 MB).")
	}
	fmt.Printf("\nbench: done in %v\n", time.Since(began).Round(time.Second))
	return errors.Join(failed...)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	os.Exit(1)
}
