package clusterkit

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Defaults for zero-valued Options fields.
const (
	DefaultPartitionCount    = 64
	DefaultReplicationFactor = 3
	DefaultClusterName       = "default"
	DefaultLeaseTTL          = 5 * time.Second
	DefaultMaxVoters         = 3
	DefaultDialTimeout       = 5 * time.Second
	DefaultHookConcurrency   = 16
	// DefaultRebalanceDelay is how long replacement replicas for a node
	// whose lease expired wait: long enough for a pause, a frozen etcd
	// member, an etcd outage or a process restart, short enough that a
	// dead node's partitions are not under-replicated for long.
	DefaultRebalanceDelay = 30 * time.Second
	// NoRebalanceDelay, as Options.RebalanceDelay, places replacement
	// replicas at once after a lease expiry.
	NoRebalanceDelay time.Duration = -1
	// DefaultMaintenanceShare: maintenance mode begins when more than half
	// of the planned nodes' leases expire within the window.
	DefaultMaintenanceShare = 0.5
	// DefaultHealthInterval and DefaultFailureThreshold apply when
	// HealthCheck.Enabled is set and the field is zero.
	DefaultHealthInterval   = time.Second
	DefaultHealthTimeout    = time.Second
	DefaultFailureThreshold = 3
	// DefaultDataDirRoot is where a node keeps its files when DataDir is
	// empty: DefaultDataDirRoot/<NodeID>, relative to the working directory.
	DefaultDataDirRoot = "clusterkit-data"
)

// Limits of the options.
const (
	MaxPartitionCount = 65536
	MinLeaseTTL       = time.Second
)

// Options configures one ClusterKit node. Zero values mean the documented
// defaults; only NodeID and HTTPAddr are required. New copies the Options,
// so the caller may reuse or change its value afterwards.
type Options struct {
	// NodeID names this node in the cluster; required, unique among live
	// nodes, 1 to 128 characters of [A-Za-z0-9._-].
	NodeID string
	// HTTPAddr is the host:port this node's HTTP API (and join endpoint)
	// listens on; required. Port 0 picks a free port.
	HTTPAddr string
	// AdvertiseAddr is the host:port other nodes and clients reach this
	// node at (Node.Addr). Default: HTTPAddr, with an empty or unspecified
	// host replaced by 127.0.0.1 and port 0 by the bound port.
	AdvertiseAddr string
	// JoinAddr is the HTTPAddr of an existing node to join through
	// (embedded mode). Empty: bootstrap a new cluster (embedded mode; a
	// node that was a member before restarts from its data dir or rejoins
	// through the etcd peers it recorded in DataDir) or use Etcd.Endpoints
	// (external mode).
	JoinAddr string
	// Bootstrap forces this node to start a new embedded cluster even when
	// JoinAddr is set. It is an error together with Etcd.Endpoints.
	Bootstrap bool
	// PartitionCount is the number of partitions, 1 to MaxPartitionCount;
	// default DefaultPartitionCount. Fixed when the cluster is created.
	PartitionCount int
	// ReplicationFactor is the number of nodes serving each partition
	// (primary included), 1 to 64; default DefaultReplicationFactor. Fixed
	// when the cluster is created.
	ReplicationFactor int
	// DataDir holds the embedded etcd data, this node's incarnation file
	// and, in secure embedded mode, its TLS material (DataDir/tls, owner
	// only). Default: DefaultDataDirRoot/<NodeID>.
	DataDir string
	// ClusterName separates clusters that share one etcd: all keys live
	// under /clusterkit/<ClusterName>/. Default DefaultClusterName;
	// 1 to 64 characters of [A-Za-z0-9._-].
	ClusterName string
	// Services are this node's application endpoints (name → address),
	// published in its member record.
	Services map[string]string
	// HealthCheck configures the optional application probe and, when
	// enabled, the lease TTL (Interval × FailureThreshold).
	HealthCheck HealthCheckConfig
	// HealthProbe, when set and HealthCheck.Enabled, is called every
	// HealthCheck.Interval with HealthCheck.Timeout; FailureThreshold
	// failures in a row mark this node unhealthy in its member record, one
	// success marks it healthy again. A panic counts as a failure.
	HealthProbe func(ctx context.Context) error
	// LeaseTTL is how long the node's membership outlives its last
	// keep-alive: a crashed node is noticed about LeaseTTL later. Whole
	// seconds, at least MinLeaseTTL and etcd's own minimum. Default: with
	// HealthCheck.Enabled, Interval × FailureThreshold rounded up to whole
	// seconds; otherwise DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Zone is this node's failure domain; replicas of one partition go to
	// distinct zones when there are enough zones.
	Zone string
	// Weight is this node's relative capacity (0 means 1); it must be
	// finite and not negative.
	Weight float64
	// ClusterToken authenticates joins and admin calls: either a join token
	// "ck1.<ca-sha256>.<secret>" (JoinToken returns it) or a plain secret.
	// Only the secret is compared (in constant time); the pin lets a
	// joining node check the cluster's certificate before it sends the
	// secret (with a plain secret it cannot, and logs a warning). In secure
	// embedded mode (the default) a bootstrap node with an empty token
	// generates a secret (kept in DataDir/tls/secret), and a node that joins
	// for the first time needs the token. With InsecurePlaintext or in
	// external mode an empty token accepts any join (set one in
	// production) and disables the admin endpoints.
	ClusterToken string
	// InsecurePlaintext turns security off for local experiments: the
	// embedded etcd member listens without TLS and accepts anyone, joins
	// travel over plain HTTP, and the HTTP API accepts the token over plain
	// HTTP. Start logs a warning. Default false: the bootstrap node creates
	// a cluster CA, every etcd listener requires a certificate of it,
	// joiners get theirs through the join call, and the HTTP API serves TLS
	// (and plain HTTP for the read-only endpoints) on HTTPAddr. All nodes
	// of a cluster must agree.
	InsecurePlaintext bool
	// HTTPTLS, when set, gives the HTTP API its own certificate (for
	// example from the company's CA) instead of the cluster certificate;
	// the port then serves TLS only. The cluster certificate still answers
	// joiners (TLS server name "clusterkit-join"). Nil: the cluster
	// certificate (secure embedded mode) or plain HTTP.
	HTTPTLS *HTTPTLSOptions
	// Etcd, when Endpoints is set, makes this node a pure client of an
	// existing etcd cluster (external mode).
	Etcd EtcdConfig
	// Embedded configures the embedded etcd member (embedded mode).
	Embedded EmbeddedConfig
	// HookConcurrency bounds how many partition-change handlers run at
	// once; default DefaultHookConcurrency.
	HookConcurrency int
	// Logger receives structured logs; default zap.NewNop().
	Logger *zap.Logger
	// RebalanceDelay is how long the leader waits, after a node's lease
	// expired, before placing new replicas for the slots it held (delayed
	// rebalance): its primaries fail over to surviving replicas at once,
	// its slots stay reserved, and if the node is back within the delay it
	// gets them back and nothing moves to any other node. Graceful leaves
	// and admin removals re-replicate at once; EndRebalanceDelay ends the
	// wait early. Default DefaultRebalanceDelay; NoRebalanceDelay (any
	// negative value) re-replicates at once. The leader's value applies:
	// give every node the same.
	RebalanceDelay time.Duration
	// DurableStorage declares that this node's data survives a restart of
	// its process (it is on disk, not only in memory). A restarted process
	// of such a node is then a catch-up from the serving replicas
	// (PartitionChangeEvent.CatchUp), and the only surviving copy of a
	// partition on it still counts as a source; without it a new process
	// counts as having lost its data. A process that kept running while
	// its lease lapsed keeps its data either way.
	DurableStorage bool
	// Maintenance configures when the leader freezes placement by itself.
	Maintenance MaintenanceConfig
	// MaxConcurrentMoves bounds the incoming handoffs in the whole cluster
	// at once, MaxConcurrentMovesPerNode those of one receiving node; the
	// leader admits the other moves as earlier ones complete. Promoting a
	// replica (failover) and serving a partition that has no source are
	// never held back. 0 (the default) means unlimited; negative values
	// are refused. The leader's values apply: give every node the same.
	MaxConcurrentMoves        int
	MaxConcurrentMovesPerNode int
	// HandoffTimeout is how long one of this node's handoffs may fail
	// (handlers retried) before it is reported stuck: in FailingHandoffs,
	// HealthCheck (a reason, and OnClusterHealthChange), the metric
	// clusterkit_handoffs_stuck and a warning in the log. An operator can
	// then CancelHandoff. Default DefaultHandoffTimeout; negative is
	// refused.
	HandoffTimeout time.Duration
	// Registerer receives this node's Prometheus metrics; default a private
	// registry (served by the HTTP API's /metrics). Two nodes in one process
	// must not share a Registerer.
	Registerer prometheus.Registerer
}

// HTTPTLSOptions are the HTTP API's own TLS files (PEM).
type HTTPTLSOptions struct {
	// CertFile and KeyFile are the API's certificate (chain) and key;
	// both required.
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the API require a client certificate
	// signed by one of its CAs.
	ClientCAFile string
}

// HealthCheckConfig configures the application health probe.
type HealthCheckConfig struct {
	Enabled bool
	// Interval between probes; default DefaultHealthInterval.
	Interval time.Duration
	// Timeout of one probe; default DefaultHealthTimeout, at most Interval.
	Timeout time.Duration
	// FailureThreshold failures in a row mark the node unhealthy; default
	// DefaultFailureThreshold.
	FailureThreshold int
}

// MaintenanceConfig says when the leader enters maintenance mode by
// itself: when more than Share of the planned nodes' leases expire within
// Window (a network partition, etcd trouble). In maintenance mode the
// leader only fails primaries over: no new replicas, no reserved slot is
// given up, no partition is handed out without a source. It ends when
// every away node is back, or by SetMaintenance(ctx, false).
type MaintenanceConfig struct {
	// Share is a fraction in (0, 1]; default DefaultMaintenanceShare. 1
	// never triggers (more than all nodes cannot leave).
	Share float64
	// Window default: 2 × LeaseTTL.
	Window time.Duration
}

// EtcdConfig points a node at an existing etcd cluster.
type EtcdConfig struct {
	// Endpoints are etcd client URLs (http://host:port or https://…).
	Endpoints []string
	// TLS is the etcd client's TLS configuration (a client certificate,
	// the CA that signed etcd's server certificate). For certificates kept
	// in files set CertFile, KeyFile and CAFile instead; not both. With
	// either, every endpoint must be https:// (or have no scheme).
	TLS *tls.Config
	// CertFile and KeyFile are a PEM client certificate and its key for
	// etcd's --client-cert-auth; both or neither. CAFile is the PEM CA that
	// signed etcd's server certificate; default the system's roots. They
	// are read at every Start, so renewed files are used after a restart.
	CertFile string
	KeyFile  string
	CAFile   string
	// Username and Password authenticate to etcd's auth (both or
	// neither). The user needs read-write permission on the cluster's
	// prefixes, /clusterkit/<ClusterName>/ and /clusterkit-data/<ClusterName>/.
	// With a client certificate and no Username, etcd takes the user from
	// the certificate's common name.
	Username string
	Password string
	// DialTimeout bounds the first connection; default DefaultDialTimeout.
	DialTimeout time.Duration
}

// EmbeddedConfig configures the embedded etcd member.
type EmbeddedConfig struct {
	// ClientAddr and PeerAddr are the member's etcd client and peer
	// host:port. Default: derived from HTTPAddr by embedetcd.DefaultAddrs
	// (HTTP port + 10000 and + 20000). When those do not fit (HTTP port
	// above 45535) or HTTPAddr has port 0, free ports are picked on the
	// first start and kept in DataDir (with port 0 the client port is
	// picked anew at every start); other nodes learn them through etcd's
	// member list, which the join endpoint answers with.
	ClientAddr string
	PeerAddr   string
	// MaxVoters is how many nodes run an etcd voter; later nodes are plain
	// clients of those, and one of them takes the seat of a voter whose
	// node is gone (see etcdvoters.go). Default DefaultMaxVoters; 1 to 7.
	MaxVoters int
	// TickInterval and ElectionTimeout are etcd's heartbeat interval and
	// election timeout; default etcd's (100 ms and 1 s). Tests use 10 ms
	// and 100 ms.
	TickInterval    time.Duration
	ElectionTimeout time.Duration
}
