package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// config is one run's settings (the command's flags).
type config struct {
	nodes, partitions []int
	ttl               time.Duration
	trials, batch     int
	pace              bool // formation: each batch waits until every node agrees
	burst             int  // nodes started and halted at once (negative: N/10)
	stepTimeout       time.Duration
	timeline          bool   // print each step's writes
	logLevel          string // nodes log at this level and above to stderr ("": not at all)
	profile           string // if set, a CPU profile of each step goes to <profile>-<N>x<P>-<step>.pprof
	memProfile        string // if set, a heap profile after formation goes to <memProfile>-<N>x<P>.pprof
}

// form starts n more nodes in batches. With pace, each batch waits until
// every node holds one settled map naming them all: in one process on two
// cores, hundreds of nodes that fall behind the map at once hold its
// versions while they catch up (at 300 × 16,384 unpaced, 21 MB per node
// live and no formation within 8 minutes).
func (c config) form(ctx context.Context, cl *cluster, n int) error {
	if !c.pace {
		return cl.startNodes(ctx, n, c.batch)
	}
	for n > 0 {
		k := min(n, c.batch)
		if err := cl.startNodes(ctx, k, k); err != nil {
			return err
		}
		if _, err := cl.agreedOn(ctx, func(*clusterkit.Cluster) bool { return true }); err != nil {
			return err
		}
		cl.progress("%d nodes agree", len(cl.nodes))
		n -= k
	}
	return nil
}

// step is what one measured change cost.
type step struct {
	took time.Duration
	// etcd's counters over the step (see etcdCounters): sent is what
	// every watcher and client received, received what all clients sent.
	etcd etcdCounters
	// writes: revisions under the prefix; mapWrites: those that put the
	// assignment; maxWrite: the largest revision's keys+values.
	writes, mapWrites, maxWrite int
	log                         []write
	start                       time.Time
	// expired: from the start until the observer saw a member key
	// deleted (a crash's lease expiry), 0 if none was.
	expired time.Duration
}

// result is one trial of one size.
type result struct {
	nodes, partitions int
	ttl               time.Duration // the nodes' LeaseTTL
	formation         time.Duration
	heapPerNode       float64 // bytes of the process heap in use per node after formation
	rssPerNode        float64 // the process's resident set per node after formation (etcd included)
	maxWrite          int     // largest revision seen in the whole trial
	startRetries      int64   // Starts tried again (see cluster.startNode)
	join, crash       step
	burstStart        burst
	burstHalt         burst
}

// runTrial forms a cluster of n nodes × p partitions on a fresh etcd,
// joins one more node, halts one that does not lead, and halts the rest.
func runTrial(c config, n, p int) (res result, err error) {
	res.nodes, res.partitions, res.ttl = n, p, c.ttl
	dir, err := os.MkdirTemp("", "scalebench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	srv, err := startEtcd(dir + "/etcd")
	if err != nil {
		return res, err
	}
	defer srv.close()
	obs, err := startObserver(srv.endpoints(), "/clusterkit/"+clusterkit.DefaultClusterName+"/")
	if err != nil {
		return res, err
	}
	defer obs.close()
	cl := &cluster{endpoints: srv.endpoints(), dir: dir, partitions: p, ttl: c.ttl, progress: func(string, ...any) {}}
	cl.logger = zap.NewNop()
	if c.logLevel != "" {
		level, err := zapcore.ParseLevel(c.logLevel)
		if err != nil {
			return res, fmt.Errorf("-log: %w", err)
		}
		if cl.logger, err = zap.NewDevelopment(zap.IncreaseLevel(level)); err != nil {
			return res, err
		}
	}
	if c.timeline {
		begin := time.Now()
		cl.progress = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "  %7.1fs "+format+"\n", append([]any{time.Since(begin).Seconds()}, args...)...)
		}
	}
	defer cl.haltAll()

	heapBefore := heapInUse()
	ctx, cancel := context.WithTimeout(context.Background(), c.stepTimeout)
	defer cancel()
	begin := time.Now()
	stopProfile, err := startProfile(c.profilePath(n, p, "formation"))
	if err != nil {
		return res, err
	}
	defer stopProfile()
	if err := cl.startNodes(ctx, 1, 1); err != nil {
		return res, err
	}
	if err := c.form(ctx, cl, n-1); err != nil {
		return res, fmt.Errorf("formation: %w", err)
	}
	if _, err := cl.agreedOn(ctx, func(*clusterkit.Cluster) bool { return true }); err != nil {
		return res, fmt.Errorf("formation: %w", err)
	}
	res.formation = time.Since(begin)
	if err := stopProfile(); err != nil {
		return res, err
	}
	if err := cl.verify(); err != nil {
		return res, fmt.Errorf("after formation: %w", err)
	}
	res.heapPerNode = float64(heapInUse()-heapBefore) / float64(n)
	res.rssPerNode = float64(residentBytes()) / float64(n)
	if err := writeHeapProfile(c.memProfile, n, p); err != nil {
		return res, err
	}

	if res.join, err = measure(c, obs, c.profilePath(n, p, "join"), func(ctx context.Context) (time.Time, time.Time, error) {
		if err := cl.startNodes(ctx, 1, 1); err != nil {
			return time.Time{}, time.Time{}, err
		}
		registered := time.Now() // Start returned: the joiner is a member
		id := cl.nodes[len(cl.nodes)-1].GetMyNodeID()
		end, err := cl.agreedOn(ctx, func(m *clusterkit.Cluster) bool { return hasNode(m, id) && serves(m, id) })
		return registered, end, err
	}); err != nil {
		return res, fmt.Errorf("join: %w", err)
	}
	if err := cl.verify(); err != nil {
		return res, fmt.Errorf("after the join: %w", err)
	}

	if res.crash, err = measure(c, obs, c.profilePath(n, p, "crash"), func(ctx context.Context) (time.Time, time.Time, error) {
		v := cl.victim()
		if v == nil {
			return time.Time{}, time.Time{}, fmt.Errorf("no node but the leader to crash")
		}
		id := v.GetMyNodeID()
		halted := time.Now()
		v.Halt()
		cl.remove(v)
		end, err := cl.agreedOn(ctx, func(m *clusterkit.Cluster) bool { return !hasNode(m, id) && !serves(m, id) })
		return halted, end, err
	}); err != nil {
		return res, fmt.Errorf("crash: %w", err)
	}
	if err := cl.verify(); err != nil {
		return res, fmt.Errorf("after the crash: %w", err)
	}
	if k := c.burstSize(n); k > 0 {
		if res.burstStart, res.burstHalt, err = runBursts(c, cl, obs, k, func(step string) string { return c.profilePath(n, p, step) }); err != nil {
			return res, err
		}
	}
	all, err := obs.since(0)
	for _, w := range all {
		res.maxWrite = max(res.maxWrite, w.bytes)
	}
	res.startRetries = cl.retries.Load()
	return res, err
}

// measure runs one change and returns its cost: the time between the
// instants act returns (from, to), and the etcd traffic from act's call
// until the cluster is quiet again (no write for a second), with a CPU
// profile of the process over that span written to profile if not empty.
func measure(c config, obs *observer, profile string, act func(ctx context.Context) (from, to time.Time, err error)) (step, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.stepTimeout)
	defer cancel()
	for !obs.quietFor(time.Second) {
		if err := pause(ctx); err != nil {
			return step{}, fmt.Errorf("cluster not quiet before the step: %w", err)
		}
	}
	mark := obs.mark()
	before, err := readEtcdCounters()
	if err != nil {
		return step{}, err
	}
	stopProfile, err := startProfile(profile)
	if err != nil {
		return step{}, err
	}
	var st step
	from, to, err := act(ctx)
	if err != nil {
		stopProfile()
		return st, err
	}
	st.start, st.took = from, to.Sub(from)
	for !obs.quietFor(time.Second) {
		if err := pause(ctx); err != nil {
			stopProfile()
			return st, fmt.Errorf("cluster not quiet after the step: %w", err)
		}
	}
	if err := stopProfile(); err != nil {
		return st, err
	}
	after, err := readEtcdCounters()
	if err != nil {
		return st, err
	}
	st.etcd = after.minus(before)
	if st.log, err = obs.since(mark); err != nil {
		return st, err
	}
	for _, w := range st.log {
		st.writes++
		if w.assignment {
			st.mapWrites++
		}
		st.maxWrite = max(st.maxWrite, w.bytes)
		if st.expired == 0 && w.kinds["members-delete"] > 0 {
			st.expired = w.at.Sub(st.start)
		}
	}
	return st, nil
}

func (c config) profilePath(n, p int, name string) string {
	if c.profile == "" {
		return ""
	}
	return fmt.Sprintf("%s-%dx%d-%s.pprof", c.profile, n, p, name)
}

// startProfile starts a CPU profile into path (nothing if path is empty)
// and returns the function that ends it.
func startProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// writeHeapProfile writes a heap profile to <prefix>-<n>x<p>.pprof
// (nothing if prefix is empty).
func writeHeapProfile(prefix string, n, p int) error {
	if prefix == "" {
		return nil
	}
	f, err := os.Create(fmt.Sprintf("%s-%dx%d.pprof", prefix, n, p))
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// residentBytes is the process's resident set (VmRSS), 0 where
// /proc/self/status is not readable.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
