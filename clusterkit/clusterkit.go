package clusterkit

import (
	"context"
	"crypto/tls"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ClusterKit is one node of a cluster. Create it with New, register hooks,
// then Start it; Stop leaves the cluster. All methods are safe for
// concurrent use. The lookups read an immutable snapshot of the partition
// map without locks and keep answering from the last map while etcd is
// unreachable.
type ClusterKit struct {
	opts    Options
	httpTLS *tls.Config // Options.HTTPTLS, loaded; nil without
	keys    keys
	log     *zap.Logger
	metrics *metrics
	hooks   hookSet
	// lookups holds the published snapshot and answers GetPartition,
	// GetPrimary, GetReplicas and GetNodes from it.
	lookups
	created time.Time
	// incarnation identifies this process's node (memberRecord.Incarnation).
	incarnation int64

	lifeMu  sync.Mutex  // serializes Start and Stop
	started atomic.Bool // Start succeeded (read without lifeMu by the operations)
	stopped bool

	// startCancel cancels a Start in progress, so that Stop need not wait
	// for it; guarded by startMu, not lifeMu (Start holds lifeMu).
	startMu     sync.Mutex
	startCancel context.CancelFunc

	// active is the run Start made: nil before Start and after a failed
	// Start; after Stop, the ended run. HTTP handlers, HealthCheck and the
	// metrics read it at any time.
	active   atomic.Pointer[run]
	isLeader atomic.Bool
}

// New validates opts and returns a node that is not started yet. Errors
// wrap ErrInvalidOptions and name the field, the rule and the value.
func New(opts Options) (*ClusterKit, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	httpTLS, err := httpTLSConfig(o.HTTPTLS)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer, o.NodeID)
	if err != nil {
		return nil, err
	}
	ck := &ClusterKit{
		opts:    o,
		httpTLS: httpTLS,
		keys:    newKeys(o.ClusterName),
		log:     o.Logger.With(zap.String("node", o.NodeID), zap.String("cluster", o.ClusterName)),
		metrics: m,
		created: time.Now(),

		incarnation: newIncarnation(),
	}
	ck.snap.Store(newSnapshot(o.NodeID, nil, nil, 0, ""))
	m.bind(ck.failingHandoffs, ck.etcdConnected)
	m.nodeOps, m.waitingMoves, m.failingList = ck.NodeOperations, ck.waitingMoves, ck.FailingHandoffs
	return ck, nil
}

// IsPrimary reports whether this node serves p as primary in the current
// map. It does not allocate.
func (ck *ClusterKit) IsPrimary(p *Partition) bool {
	s := ck.snap.Load()
	i, ok := s.index(p)
	return ok && s.primaryAt(i)
}

// IsReplica reports whether this node serves p as a non-primary replica in
// the current map (an incoming node is not a replica yet). It does not
// allocate.
func (ck *ClusterKit) IsReplica(p *Partition) bool {
	s := ck.snap.Load()
	i, ok := s.index(p)
	return ok && s.replicaAt(i)
}

// GetMyNodeID returns this node's ID.
func (ck *ClusterKit) GetMyNodeID() string { return ck.opts.NodeID }

// GetCluster returns the whole cluster as this node sees it. The Cluster
// and its slices are the caller's; the Nodes' Services maps are shared and
// read-only.
func (ck *ClusterKit) GetCluster() *Cluster {
	return clusterOf(ck.snap.Load(), ck.opts.ClusterName, ck.opts.PartitionCount, ck.opts.ReplicationFactor)
}

// clusterOf copies a snapshot into a Cluster.
func clusterOf(s *snapshot, name string, partitions, rf int) *Cluster {
	c := &Cluster{
		Name:              name,
		PartitionCount:    partitions,
		ReplicationFactor: rf,
		Leader:            s.leader,
		AssignmentVersion: s.version,
		Settled:           s.settled,
		Maintenance:       s.maintenance,
		AwayNodes:         slices.Clone(s.away),
		Nodes:             make([]Node, len(s.members)),
		Partitions:        s.partitionList(),
	}
	copy(c.Nodes, s.members)
	return c
}

// GetPartitionsForNode returns the partitions that node id serves (as
// primary or replica) in the current map, in index order.
func (ck *ClusterKit) GetPartitionsForNode(id string) []*Partition {
	s := ck.snap.Load()
	var out []*Partition
	for i := range s.count {
		p := s.part(i)
		if p.PrimaryNode == id {
			out = append(out, p)
			continue
		}
		for _, r := range p.ReplicaNodes {
			if r == id {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// IsLeader reports whether this node currently leads the cluster.
func (ck *ClusterKit) IsLeader() bool { return ck.isLeader.Load() }

// GetMetrics returns a summary of this node's state and counters.
func (ck *ClusterKit) GetMetrics() *Metrics {
	s := ck.snap.Load()
	m := &Metrics{
		NodeID:            ck.opts.NodeID,
		IsLeader:          ck.isLeader.Load(),
		Members:           len(s.members),
		AssignmentVersion: s.version,
		Uptime:            time.Since(ck.created),
	}
	m.PrimaryPartitions, m.ReplicaPartitions, m.IncomingPartitions = s.mine.primary, s.mine.replica, s.mine.incoming
	m.RebalancesStarted = int64(counterValue(ck.metrics.rebalancesStarted))
	m.RebalancesDone = int64(counterValue(ck.metrics.rebalancesCompleted))
	m.HandoffFailures = int64(counterValue(ck.metrics.handoffFailures))
	m.HookPanics = int64(sumCounterVec(ck.metrics.hookPanics))
	return m
}

// setLeader records whether this node leads, for IsLeader and the gauge.
func (ck *ClusterKit) setLeader(leads bool) {
	ck.isLeader.Store(leads)
	if leads {
		ck.metrics.isLeader.Set(1)
	} else {
		ck.metrics.isLeader.Set(0)
	}
}

// failingHandoffs counts the partitions whose handoff to this node is
// failing; 0 when no run is active.
func (ck *ClusterKit) failingHandoffs() int {
	if r := ck.active.Load(); r != nil {
		return r.ready.failingCount()
	}
	return 0
}

// etcdConnected reports whether the active run's watch is in sync.
func (ck *ClusterKit) etcdConnected() bool {
	r := ck.active.Load()
	if r == nil {
		return false
	}
	w := r.watch.Load()
	return w != nil && w.Connected()
}

func zapNode(id string) zap.Field   { return zap.String("member", id) }
func zapErr(err error) zap.Field    { return zap.Error(err) }
func zapHook(name string) zap.Field { return zap.String("hook", name) }
