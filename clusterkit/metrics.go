package clusterkit

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// metrics are one node's Prometheus collectors. Every node has its own, so
// several nodes in one process never collide.
//
// Names carry the clusterkit_ prefix and their unit. Gauges and counters
// are updated where the state changes (follower, run, dispatcher); the
// few that are cheaper to read than to keep (map age, failing handoffs,
// etcd connectivity) are computed at scrape time from the functions given
// to bind.
type metrics struct {
	registry *prometheus.Registry // the private registry, nil with Options.Registerer
	gatherer prometheus.Gatherer

	members             *prometheus.GaugeVec
	isLeader            prometheus.Gauge
	assignmentVersion   prometheus.Gauge
	partitions          *prometheus.GaugeVec
	rebalancesStarted   prometheus.Counter
	rebalancesCompleted prometheus.Counter
	rebalanceDuration   prometheus.Histogram
	handoffsPending     prometheus.Gauge
	handoffFailures     prometheus.Counter
	hookDuration        *prometheus.HistogramVec
	hookPanics          *prometheus.CounterVec
	keepAliveFailures   prometheus.Counter
	etcdErrors          *prometheus.CounterVec
	watchResyncs        prometheus.Counter
	watchCoalesced      prometheus.Counter
	decodeErrors        *prometheus.CounterVec
	leaderTxns          prometheus.Counter
	maintenanceMode     prometheus.Gauge
	awayNodes           prometheus.Gauge
	unansweringMembers  prometheus.Gauge
	lastAssignment      atomic.Int64 // unix nanoseconds of the last map change

	// The scrape-time gauges' sources, set once by bind.
	failingHandoffs func() int
	etcdConnected   func() bool
	nodeOps         func() []NodeOperationStatus
	waitingMoves    func() int
	failingList     func() []FailingHandoff

	reg        prometheus.Registerer
	collectors []prometheus.Collector
}

// unregister removes this node's collectors from the caller's Registerer,
// so a stopped node can be replaced by a new one on the same registry.
func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

func newMetrics(reg prometheus.Registerer, nodeID string) (*metrics, error) {
	m := &metrics{}
	defer func() { m.reg = reg }()
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		m.registry, m.gatherer, reg = r, r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	f := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "clusterkit", Name: name, Help: help}
	}
	m.members = prometheus.NewGaugeVec(prometheus.GaugeOpts(f("members", "Live members by state (active, unhealthy).")), []string{"state"})
	m.isLeader = prometheus.NewGauge(prometheus.GaugeOpts(f("is_leader", "1 while this node is the cluster leader.")))
	m.assignmentVersion = prometheus.NewGauge(prometheus.GaugeOpts(f("assignment_version", "Version of the partition map this node holds.")))
	m.partitions = prometheus.NewGaugeVec(prometheus.GaugeOpts(f("partitions", "Partitions this node holds, by role (primary, replica, incoming).")), []string{"role"})
	m.rebalancesStarted = prometheus.NewCounter(prometheus.CounterOpts(f("rebalances_started_total", "Rebalances seen starting.")))
	m.rebalancesCompleted = prometheus.NewCounter(prometheus.CounterOpts(f("rebalances_completed_total", "Rebalances seen completing.")))
	m.rebalanceDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "clusterkit", Name: "rebalance_duration_seconds",
		Help: "Duration of completed rebalances.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)})
	m.handoffsPending = prometheus.NewGauge(prometheus.GaugeOpts(f("handoffs_pending", "Partitions this node is receiving (incoming).")))
	m.handoffFailures = prometheus.NewCounter(prometheus.CounterOpts(f("handoff_failures_total", "Failed attempts of this node's OnPartitionChange handlers for partitions it receives.")))
	m.hookDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "clusterkit", Name: "hook_duration_seconds",
		Help: "Duration of hook handler calls, by hook.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12)}, []string{"hook"})
	m.hookPanics = prometheus.NewCounterVec(prometheus.CounterOpts(f("hook_panics_total", "Hook handler panics recovered, by hook.")), []string{"hook"})
	m.keepAliveFailures = prometheus.NewCounter(prometheus.CounterOpts(f("lease_keepalive_failures_total",
		"Times this node lost its membership lease: keep-alives failed until it expired, or it was revoked.")))
	m.etcdErrors = prometheus.NewCounterVec(prometheus.CounterOpts(f("etcd_request_errors_total", "Failed etcd requests, by operation.")), []string{"op"})
	m.watchResyncs = prometheus.NewCounter(prometheus.CounterOpts(f("watch_resyncs_total", "Re-reads of the cluster state after a compacted or failed watch.")))
	m.watchCoalesced = prometheus.NewCounter(prometheus.CounterOpts(f("watch_coalesced_total", "Times this node fell behind the cluster state by more than the watcher's queue bound and applied the net difference of the changes it had not applied.")))
	m.decodeErrors = prometheus.NewCounterVec(prometheus.CounterOpts(f("state_decode_errors_total",
		"Values in etcd this node ignored as unusable (malformed, foreign, unknown format), by key kind; ready records only where they are decoded (the leader, plan previews).")), []string{"key_kind"})
	m.leaderTxns = prometheus.NewCounter(prometheus.CounterOpts(f("leader_txns_total", "Txns this node wrote as leader (a map change too large for one Txn takes several).")))
	m.maintenanceMode = prometheus.NewGauge(prometheus.GaugeOpts(f("maintenance_mode", "1 while the partition map is in maintenance mode (placement frozen).")))
	m.awayNodes = prometheus.NewGauge(prometheus.GaugeOpts(f("away_nodes", "Nodes whose lease expired and whose slots are reserved (rebalance delay).")))
	m.unansweringMembers = prometheus.NewGauge(prometheus.GaugeOpts(f("etcd_members_unanswering",
		"etcd members this node's client avoids because they did not answer its probes (frozen, overloaded or cut off).")))
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts(f("assignment_age_seconds", "Seconds since this node's partition map last changed.")), func() float64 {
		last := m.lastAssignment.Load()
		if last == 0 {
			return 0
		}
		return time.Since(time.Unix(0, last)).Seconds()
	})
	failing := prometheus.NewGaugeFunc(prometheus.GaugeOpts(f("handoffs_failing",
		"Partitions this node is receiving whose OnPartitionChange handlers failed at their last attempt (retried with backoff).")), func() float64 {
		return float64(m.failingHandoffs())
	})
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts(f("etcd_connected",
		"1 while this node's watch of the cluster state is in touch with etcd.")), func() float64 {
		if m.etcdConnected() {
			return 1
		}
		return 0
	})
	var registered []prometheus.Collector
	for _, c := range []prometheus.Collector{m.members, m.isLeader, m.assignmentVersion, m.partitions, m.rebalancesStarted,
		m.rebalancesCompleted, m.rebalanceDuration, m.handoffsPending, m.handoffFailures, m.hookDuration, m.hookPanics,
		m.keepAliveFailures, m.etcdErrors, m.watchResyncs, m.watchCoalesced, m.decodeErrors, m.leaderTxns, m.maintenanceMode, m.awayNodes,
		m.unansweringMembers, age, failing, connected, m.opsCollector()} {
		if err := reg.Register(c); err != nil {
			// Leave the caller's registry as it was.
			for _, r := range registered {
				reg.Unregister(r)
			}
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("%w: Registerer already has ClusterKit metrics (node %q); give each node its own", ErrInvalidOptions, nodeID)
			}
			return nil, fmt.Errorf("clusterkit: register metrics: %w", err)
		}
		registered = append(registered, c)
	}
	m.collectors = registered
	return m, nil
}

// bind gives the scrape-time gauges their sources. New calls it once,
// before anything is registered for scraping can read them.
func (m *metrics) bind(failingHandoffs func() int, etcdConnected func() bool) {
	m.failingHandoffs, m.etcdConnected = failingHandoffs, etcdConnected
}

// observeSnapshot refreshes the per-node gauges from a new snapshot.
func (m *metrics) observeSnapshot(s *snapshot) {
	m.assignmentVersion.Set(float64(s.version))
	m.members.WithLabelValues(NodeActive).Set(float64(len(s.members) - len(s.unhealthy)))
	m.members.WithLabelValues(NodeUnhealthy).Set(float64(len(s.unhealthy)))
	m.partitions.WithLabelValues("primary").Set(float64(s.mine.primary))
	m.partitions.WithLabelValues("replica").Set(float64(s.mine.replica))
	m.partitions.WithLabelValues("incoming").Set(float64(s.mine.incoming))
	m.handoffsPending.Set(float64(s.mine.incoming))
	m.awayNodes.Set(float64(len(s.away)))
	if s.maintenance != "" {
		m.maintenanceMode.Set(1)
	} else {
		m.maintenanceMode.Set(0)
	}
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// sumCounterVec adds up every child of a counter vector.
func sumCounterVec(v *prometheus.CounterVec) float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() { v.Collect(ch); close(ch) }()
	total := 0.0
	for metric := range ch {
		var m dto.Metric
		if metric.Write(&m) == nil {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}
