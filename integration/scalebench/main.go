// Command scalebench measures how ClusterKit scales with the number of
// nodes and partitions (issue 13): it runs N real ClusterKit nodes in this
// process, all plain clients (external mode, no hooks) of one embedded
// etcd, and for each size and trial, on a fresh etcd:
//
//	formation        first node, then the others started concurrently in
//	                 batches (-batch), until every node holds one settled map
//	join → agree     one more node: from its Start returning (it is a
//	                 member) until every node's map is settled, serves it
//	                 and counts it as a member
//	crash → repaired a node that does not lead is halted (its lease is left
//	                 to expire, RebalanceDelay off): from Halt until every
//	                 survivor's map is settled and names it nowhere
//	bursts           -burst nodes started at once, then as many halted at
//	                 once: time until all agree, and the map versions and
//	                 rebalances the first node saw
//
// and for the join and the crash the etcd traffic until the cluster is
// quiet again (no write under the prefix for 1 s): revisions written and
// those that put the map, bytes put (keys + values), bytes etcd sent to
// clients (etcd_network_client_grpc_sent_bytes_total: mostly the watch
// events of N+1 watchers, the observer included), the largest revision;
// and the process heap in use per node after formation. Every node's map is
// compared after each step (untimed). Nodes are halted, not stopped, at the
// end.
//
//	go run ./integration/scalebench                                  # 10 and 100 nodes × 1,024 partitions, 3 trials
//	go run ./integration/scalebench -nodes 1000 -partitions 16384 -trials 1 -timeout 20m
//	go run ./integration/scalebench -png docs/scale.png -timeline -save small.json
//	go run ./integration/scalebench -from small.json,large.json -png docs/scale.png
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	var c config
	var nodes, partitions, png, save, from, pprofAddr string
	flag.StringVar(&nodes, "nodes", "10,100", "comma-separated node counts N")
	flag.StringVar(&partitions, "partitions", "1024", "comma-separated partition counts P")
	flag.DurationVar(&c.ttl, "ttl", 3*time.Second, "LeaseTTL of every node (whole seconds)")
	flag.IntVar(&c.trials, "trials", 3, "trials per size, each on a fresh etcd")
	flag.IntVar(&c.batch, "batch", 10, "nodes started concurrently during formation")
	flag.BoolVar(&c.pace, "pace", false, "formation: after each batch, wait until every node agrees on a settled map")
	flag.IntVar(&c.burst, "burst", -1, "after the crash, start this many nodes at once, then halt as many at once (negative: N/10, at least 2; 0: no bursts)")
	flag.DurationVar(&c.stepTimeout, "timeout", 5*time.Minute, "bound of formation and of each measured step")
	flag.BoolVar(&c.timeline, "timeline", false, "print every write of each join and crash to stderr")
	flag.StringVar(&c.logLevel, "log", "", "let the nodes log at this level (debug, info, warn, error) and above to stderr")
	flag.StringVar(&c.profile, "cpuprofile", "", "write a CPU profile of each join and crash to <this>-<N>x<P>-<step>.pprof (the last trial's)")
	flag.StringVar(&c.memProfile, "memprofile", "", "write a heap profile after formation to <this>-<N>x<P>.pprof")
	flag.StringVar(&pprofAddr, "pprof", "", "serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6060) while running")
	flag.StringVar(&png, "png", "", "write a plot of the medians to this PNG file")
	flag.StringVar(&save, "save", "", "write the summaries to this JSON file")
	flag.StringVar(&from, "from", "", "run nothing: print the table and draw -png from these comma-separated -save files")
	flag.Parse()
	if from != "" {
		sizes, err := load(strings.Split(from, ","))
		if err != nil {
			fail(err)
		}
		report(sizes, png, "")
		return
	}
	if pprofAddr != "" {
		go func() { fail(http.ListenAndServe(pprofAddr, nil)) }()
	}
	var err error
	if c.nodes, err = ints(nodes, 3); err != nil {
		fail(fmt.Errorf("-nodes: %w", err))
	}
	if c.partitions, err = ints(partitions, 1); err != nil {
		fail(fmt.Errorf("-partitions: %w", err))
	}
	if c.trials < 1 || c.batch < 1 {
		fail(fmt.Errorf("-trials and -batch must be at least 1 (got %d, %d)", c.trials, c.batch))
	}
	fmt.Printf("scalebench: %s/%s, %d CPUs, GOMAXPROCS %d, GOGC %s, GOMEMLIMIT %s, LeaseTTL %v, RF 3, formation in batches of %d, %d trial(s)\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), envOr("GOGC", "100"), envOr("GOMEMLIMIT", "none"), c.ttl, c.batch, c.trials)
	var sizes []summary
	for _, p := range c.partitions {
		for _, n := range c.nodes {
			var rs []result
			for t := 1; t <= c.trials; t++ {
				r, err := runTrial(c, n, p)
				if err != nil {
					fail(fmt.Errorf("%d nodes × %d partitions, trial %d: %w", n, p, t, err))
				}
				fmt.Fprintf(os.Stderr, "%d × %d trial %d: %s\n", n, p, t, r.line())
				if c.timeline {
					printTimeline(os.Stderr, "join", r.join)
					printTimeline(os.Stderr, "crash", r.crash)
					printTimeline(os.Stderr, "burst of starts", r.burstStart.step)
					printTimeline(os.Stderr, "burst of halts", r.burstHalt.step)
				}
				rs = append(rs, r)
			}
			sizes = append(sizes, summarize(rs))
		}
	}
	report(sizes, png, save)
}

// envOr returns environment variable k, or def when it is unset.
func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// report prints the table and writes the plot and the JSON file (each
// when its path is set).
func report(sizes []summary, png, save string) {
	printTable(os.Stdout, sizes)
	if png != "" {
		if err := writePlot(png, sizes); err != nil {
			fail(err)
		}
	}
	if save != "" {
		b, err := json.MarshalIndent(sizes, "", "  ")
		if err == nil {
			err = os.WriteFile(save, b, 0o644)
		}
		if err != nil {
			fail(fmt.Errorf("save: %w", err))
		}
	}
}

// load reads -save files, sorted by partitions then nodes.
func load(paths []string) ([]summary, error) {
	var out []summary
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var s []summary
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, s...)
	}
	slices.SortStableFunc(out, func(a, b summary) int {
		return cmp.Or(cmp.Compare(a.Partitions, b.Partitions), cmp.Compare(a.Nodes, b.Nodes))
	})
	return out, nil
}

// ints parses a comma-separated list of integers, each at least least.
func ints(s string, least int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < least {
			return nil, fmt.Errorf("%q is not an integer ≥ %d", f, least)
		}
		out = append(out, v)
	}
	return out, nil
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "scalebench: %v\n", err)
	os.Exit(1)
}
