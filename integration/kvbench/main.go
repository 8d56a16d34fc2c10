// Command kvbench measures the throughput and latency of the
// examples/kvstore store the way the original ClusterKit published its
// figures: a cluster of separate processes on loopback (10 nodes, 64
// partitions, RF 3 by default), and a load generator in this process with
// concurrent clients, for each of
//
//	sync write      routed to the primary, acknowledged by a majority (sync mode)
//	async write     routed to the primary, acknowledged by the primary (async mode)
//	local read      routed to the primary, confirmed by a majority (sync mode)
//	forwarded read  sent to a node that is not the primary, which forwards it (server-side mode)
//
// It prints the machine, then ops/s, p50 and p99 latency and errors per
// mode as a Markdown table.
//
//	go run ./integration/kvbench                        # every mode, 10 s each
//	go run ./integration/kvbench -clients 64 -duration 30s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
	"github.com/clusterkit-go/clusterkit/integration/internal/machine"
)

// config is the command's flags.
type config struct {
	nodes, partitions, rf, clients, keys int
	duration, warmup                     time.Duration
	valueSize                            int
	only                                 string
}

func main() {
	localcluster.RunChildIfRequested()
	var c config
	flag.IntVar(&c.nodes, "nodes", 10, "node processes")
	flag.IntVar(&c.partitions, "partitions", 64, "partitions")
	flag.IntVar(&c.rf, "rf", 3, "replication factor")
	flag.IntVar(&c.clients, "clients", 32, "concurrent clients of the load generator")
	flag.IntVar(&c.keys, "keys", 10000, "keys written before the measurements and then read and written at random")
	flag.IntVar(&c.valueSize, "value", 100, "value size in bytes")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured time per mode")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each measurement")
	flag.StringVar(&c.only, "only", "", "comma-separated modes to run (sync-write, async-write, local-read, forwarded-read); default all")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "kvbench: %v\n", err)
		os.Exit(1)
	}
}

// phase is one measured mode on a cluster of one store mode.
type phase struct {
	name  string
	mode  store.Mode
	write bool
	// forwarded: send each request to a node that is not the key's
	// primary; otherwise to the primary.
	forwarded bool
}

var phases = []phase{
	{name: "sync-write", mode: store.ModeSync, write: true},
	{name: "local-read", mode: store.ModeSync},
	{name: "async-write", mode: store.ModeAsync, write: true},
	{name: "forwarded-read", mode: store.ModeServerSide, forwarded: true},
}

func run(ctx context.Context, c config) error {
	fmt.Printf("machine: %s, %d cores (GOMAXPROCS %d), %s %s/%s\n", machine.CPUModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("cluster: %d processes on loopback, %d partitions, RF %d, embedded etcd (3 voters); load: %d clients in one process, %d keys, %d-byte values, %v per mode after %v of warm-up\n\n",
		c.nodes, c.partitions, c.rf, c.clients, c.keys, c.valueSize, c.duration, c.warmup)
	var results []result
	byMode := map[store.Mode][]phase{}
	var order []store.Mode
	for _, p := range phases {
		if c.only != "" && !strings.Contains(","+c.only+",", ","+p.name+",") {
			continue
		}
		if _, ok := byMode[p.mode]; !ok {
			order = append(order, p.mode)
		}
		byMode[p.mode] = append(byMode[p.mode], p)
	}
	for _, m := range order {
		rs, err := runCluster(ctx, c, m, byMode[m])
		results = append(results, rs...)
		if err != nil {
			return err
		}
	}
	fmt.Println()
	printTable(results)
	return nil
}

// runCluster forms a cluster in mode m, loads the keys and measures ps.
func runCluster(ctx context.Context, c config, m store.Mode, ps []phase) ([]result, error) {
	cmd, err := localcluster.SelfCommand()
	if err != nil {
		return nil, err
	}
	cl, err := localcluster.New(localcluster.Options{Command: cmd, Mode: m, Partitions: c.partitions, ReplicationFactor: c.rf})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	began := time.Now()
	for i := 1; i <= c.nodes; i++ {
		if _, err := cl.Start(ctx, fmt.Sprintf("node-%d", i)); err != nil {
			return nil, err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	_, err = cl.WaitSettled(sctx)
	cancel()
	if err != nil {
		return nil, err
	}
	fmt.Printf("%s: %d nodes settled in %v\n", m, c.nodes, time.Since(began).Round(time.Millisecond))
	g, err := newGenerator(ctx, cl, c)
	if err != nil {
		return nil, err
	}
	defer g.close()
	t := time.Now()
	if err := g.load(ctx); err != nil {
		return nil, err
	}
	fmt.Printf("%s: wrote %d keys in %v\n", m, c.keys, time.Since(t).Round(time.Millisecond))
	var out []result
	for _, p := range ps {
		r := g.measure(ctx, p)
		fmt.Printf("%s: %s\n", p.name, r)
		out = append(out, r)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}
