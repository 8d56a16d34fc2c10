package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// cluster is the ClusterKit nodes of one trial, all in this process, all
// plain clients of one etcd (external mode), without hooks.
type cluster struct {
	endpoints  []string
	dir        string
	partitions int
	ttl        time.Duration
	nodes      []*clusterkit.ClusterKit // live nodes, in start order
	seq        int
	retries    atomic.Int64 // Starts that failed and were tried again
	progress   func(format string, args ...any)
	logger     *zap.Logger // nodes' logger (nil: none)
}

// options returns the options of the next node.
func (c *cluster) options() (clusterkit.Options, error) {
	c.seq++
	id := fmt.Sprintf("node-%04d", c.seq)
	dir := filepath.Join(c.dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return clusterkit.Options{}, err
	}
	return clusterkit.Options{
		NodeID:            id,
		HTTPAddr:          "127.0.0.1:0",
		DataDir:           dir,
		PartitionCount:    c.partitions,
		ReplicationFactor: 3,
		LeaseTTL:          c.ttl,
		RebalanceDelay:    clusterkit.NoRebalanceDelay, // a crash is repaired at once, as issue 13 measures it
		// The first request must answer within DialTimeout; a loaded 2-core
		// machine starting 10 nodes at once missed the default 5 s.
		Etcd:   clusterkit.EtcdConfig{Endpoints: c.endpoints, DialTimeout: 30 * time.Second},
		Logger: c.logger, // ClusterKit names the node in every line
	}, nil
}

// startNodes starts n new nodes, at most batch at a time concurrently
// (each batch's Starts all return before the next begins), and appends
// them to c.nodes in start order.
func (c *cluster) startNodes(ctx context.Context, n, batch int) error {
	for n > 0 {
		k := min(n, batch)
		opts := make([]clusterkit.Options, k)
		for i := range opts {
			var err error
			if opts[i], err = c.options(); err != nil {
				return err
			}
		}
		started := make([]*clusterkit.ClusterKit, k)
		errs := make([]error, k)
		var wg sync.WaitGroup
		for i := range opts {
			wg.Go(func() { started[i], errs[i] = c.startNode(ctx, opts[i]) })
		}
		wg.Wait()
		for _, ck := range started {
			if ck != nil {
				c.nodes = append(c.nodes, ck)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		c.progress("%d nodes started, %d Start retries", len(c.nodes), c.retries.Load())
		n -= k
	}
	return nil
}

// startAttempts bounds the Starts of one node (at 300 × 16,384 a
// joining node's config write missed its 5 s three times in a row while
// etcd streamed each change to 260 watchers).
const startAttempts = 5

// startNode creates and starts one node. A Start that fails (on this
// loaded machine, a registration can miss ClusterKit's 5 s request
// timeout while a hundred nodes decode maps) is tried again, up to
// startAttempts times in all, and counted in c.retries.
func (c *cluster) startNode(ctx context.Context, o clusterkit.Options) (*clusterkit.ClusterKit, error) {
	ck, err := clusterkit.New(o)
	if err != nil {
		return nil, fmt.Errorf("new %s: %w", o.NodeID, err)
	}
	for attempt := 1; ; attempt++ {
		err := ck.Start(ctx)
		if err == nil {
			return ck, nil
		}
		if attempt == startAttempts || ctx.Err() != nil {
			ck.Halt()
			return nil, fmt.Errorf("start %s (attempt %d): %w", o.NodeID, attempt, err)
		}
		c.retries.Add(1)
	}
}

// victim returns a node that does not lead (a crashed leader also costs
// an election, which is measured elsewhere).
func (c *cluster) victim() *clusterkit.ClusterKit {
	for i := len(c.nodes) - 1; i >= 1; i-- { // nodes[0] is the probe
		if !c.nodes[i].IsLeader() {
			return c.nodes[i]
		}
	}
	return nil
}

// remove drops ck from the live nodes.
func (c *cluster) remove(ck *clusterkit.ClusterKit) {
	c.nodes = slices.DeleteFunc(c.nodes, func(x *clusterkit.ClusterKit) bool { return x == ck })
}

// haltAll halts every node, 32 at a time: a crash-like stop that does not
// wait for the others to replan (graceful Stops of 100 nodes took over
// five minutes, each leave causing a rebalance).
func (c *cluster) haltAll() {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, ck := range c.nodes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ck.Halt()
		})
	}
	wg.Wait()
	c.nodes = nil
}

// agreedOn waits until every node's map is settled and planned for
// exactly the live nodes, and returns when the last one got there. ok
// (on the cluster a probe node sees: it is what the others must reach)
// adds the step's own condition. The probe's full map is read every
// poll; the others are compared by member count and assignment version,
// which is cheap at 1,000 nodes × 16,384 partitions; verify checks every
// node's full map afterwards.
func (c *cluster) agreedOn(ctx context.Context, ok func(*clusterkit.Cluster) bool) (time.Time, error) {
	probe := c.nodes[0]
	n := len(c.nodes)
	var version int64
	var seen *clusterkit.Metrics
	for {
		// GetCluster copies the whole map: read it only when the probe's
		// map version or member count moved.
		m := probe.GetMetrics()
		if seen == nil || m.AssignmentVersion != seen.AssignmentVersion || m.Members != seen.Members {
			seen = m
			cl := probe.GetCluster()
			if cl.Settled && len(cl.Nodes) == n && fullyServed(cl) && ok(cl) {
				version = cl.AssignmentVersion
				break
			}
		}
		if err := pause(ctx); err != nil {
			cl := probe.GetCluster()
			return time.Time{}, fmt.Errorf("probe %s: last map v%d settled=%v with %d of %d nodes: %w",
				probe.GetMyNodeID(), cl.AssignmentVersion, cl.Settled, len(cl.Nodes), n, err)
		}
	}
	for i := 0; i < len(c.nodes); {
		m := c.nodes[i].GetMetrics()
		if m.Members == n && m.AssignmentVersion >= version {
			i++
			continue
		}
		if err := pause(ctx); err != nil {
			return time.Time{}, fmt.Errorf("%s: map v%d with %d members, want v%d with %d: %w",
				m.NodeID, m.AssignmentVersion, m.Members, version, n, err)
		}
	}
	return time.Now(), nil
}

// pause sleeps one poll interval (2 ms) or returns ctx's error.
func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Millisecond):
		return nil
	}
}

// verify checks, untimed, that every node ends up holding the same
// settled map as the first (same version, primaries, replicas and
// epochs) within a minute.
func (c *cluster) verify() error {
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = c.compare(); err == nil {
			return nil
		}
	}
	return err
}

func (c *cluster) compare() error {
	first := c.nodes[0].GetCluster()
	for _, ck := range c.nodes[1:] {
		cl := ck.GetCluster()
		if !cl.Settled || cl.AssignmentVersion != first.AssignmentVersion || len(cl.Nodes) != len(first.Nodes) {
			return fmt.Errorf("%s: map v%d settled=%v with %d nodes; %s has v%d with %d",
				ck.GetMyNodeID(), cl.AssignmentVersion, cl.Settled, len(cl.Nodes),
				c.nodes[0].GetMyNodeID(), first.AssignmentVersion, len(first.Nodes))
		}
		for i, p := range cl.Partitions {
			q := first.Partitions[i]
			if p.PrimaryNode != q.PrimaryNode || !slices.Equal(p.ReplicaNodes, q.ReplicaNodes) || p.Epoch != q.Epoch {
				return fmt.Errorf("%s and %s disagree on partition %d", ck.GetMyNodeID(), c.nodes[0].GetMyNodeID(), i)
			}
		}
	}
	return nil
}

// fullyServed reports whether every partition of cl has min(RF, nodes)
// serving live nodes and none incoming (clustertest.Agreed's condition).
func fullyServed(cl *clusterkit.Cluster) bool {
	want := min(cl.ReplicationFactor, len(cl.Nodes))
	live := make(map[string]bool, len(cl.Nodes))
	for _, n := range cl.Nodes {
		live[n.ID] = true
	}
	for _, p := range cl.Partitions {
		if len(p.IncomingNodes) > 0 || 1+len(p.ReplicaNodes) != want || !live[p.PrimaryNode] {
			return false
		}
		for _, r := range p.ReplicaNodes {
			if !live[r] {
				return false
			}
		}
	}
	return true
}

// serves reports whether any partition of cl names id as primary,
// replica or incoming.
func serves(cl *clusterkit.Cluster, id string) bool {
	for _, p := range cl.Partitions {
		if p.PrimaryNode == id || slices.Contains(p.ReplicaNodes, id) || slices.Contains(p.IncomingNodes, id) {
			return true
		}
	}
	return false
}

func hasNode(cl *clusterkit.Cluster, id string) bool {
	return slices.ContainsFunc(cl.Nodes, func(n clusterkit.Node) bool { return n.ID == id })
}
