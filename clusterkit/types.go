package clusterkit

import (
	"strconv"
	"time"
)

// Node is one member of the cluster as the lookups and events report it.
// Values returned by the lookups are shared with other callers and must be
// treated as read-only (the Services map too).
type Node struct {
	// ID is the node's NodeID option.
	ID string `json:"id"`
	// Addr is the node's advertised HTTP address (host:port).
	Addr string `json:"addr"`
	// IP holds the same address as Addr.
	//
	// Deprecated: the original ClusterKit's name; it holds host:port, not
	// an IP. Use Addr.
	IP string `json:"-"`
	// Zone and Weight are the node's placement attributes.
	Zone   string  `json:"zone,omitempty"`
	Weight float64 `json:"weight"`
	// Services is the node's Services option (service name → address).
	Services map[string]string `json:"services,omitempty"`
	// Status is NodeActive, NodeUnhealthy (its application probe fails) or
	// NodeOffline (it is no longer a member but still named by the map).
	Status string `json:"status"`
	// Incarnation identifies the node's process: it changes when a new
	// process starts (a restart), not when a running process registers
	// again after its lease lapsed (an etcd outage, a freeze, a pause).
	Incarnation int64 `json:"incarnation"`
	// StartedAt is when this node last registered.
	StartedAt time.Time `json:"started_at"`
}

// Node statuses.
const (
	NodeActive    = "active"
	NodeUnhealthy = "unhealthy"
	NodeOffline   = "offline"
)

// Partition is one partition of the key space and the nodes that serve it.
// Partitions returned by the lookups belong to an immutable snapshot of the
// map and are shared: treat them as read-only.
type Partition struct {
	// ID is "partition-<Index>".
	ID string `json:"id"`
	// Index is the partition number, 0 ≤ Index < PartitionCount.
	Index int `json:"index"`
	// PrimaryNode is the ID of the node that serves the partition as
	// primary; "" only before the first map.
	PrimaryNode string `json:"primary"`
	// ReplicaNodes are the IDs of the other serving nodes, in order.
	ReplicaNodes []string `json:"replicas"`
	// IncomingNodes are the IDs of nodes that are planned to serve the
	// partition and are still receiving its data (handoff in progress).
	IncomingNodes []string `json:"incoming"`
	// Epoch grows every time the serving set (or its primary) changes; an
	// application can attach it to writes to reject a stale primary.
	Epoch uint64 `json:"epoch"`
}

// PartitionID returns the ID of partition index i ("partition-<i>").
func PartitionID(i int) string { return "partition-" + strconv.Itoa(i) }

// Cluster is a point-in-time view of the whole cluster, returned by
// GetCluster. Its slices are the caller's; the Nodes' Services maps are
// shared with the node and must not be modified.
type Cluster struct {
	Name              string      `json:"name"`
	PartitionCount    int         `json:"partition_count"`
	ReplicationFactor int         `json:"replication_factor"`
	Leader            string      `json:"leader"`
	Nodes             []Node      `json:"nodes"`
	Partitions        []Partition `json:"partitions"`
	// AssignmentVersion grows with every write of the partition map.
	AssignmentVersion int64 `json:"assignment_version"`
	// Settled: the map was planned for exactly the current members (with
	// their zones, weights and processes), no node is away and no
	// partition has an incoming node.
	Settled bool `json:"settled"`
	// Maintenance says why placement is frozen (maintenance mode); empty
	// when it is not.
	Maintenance string `json:"maintenance,omitempty"`
	// AwayNodes are the nodes whose lease expired and whose slots are
	// reserved (within Options.RebalanceDelay, or during maintenance).
	AwayNodes []string `json:"away_nodes,omitempty"`
}

// ChangeReason says what caused partitions to move: the trigger of the
// rebalance that a PartitionChangeEvent belongs to.
type ChangeReason string

// RebalanceTrigger is what started a rebalance (RebalanceEvent.Trigger).
// It is the same type as ChangeReason, with the same values: a partition
// change's reason is its rebalance's trigger.
type RebalanceTrigger = ChangeReason

// Change reasons of PartitionChangeEvent and triggers of RebalanceEvent.
const (
	ReasonNodeJoin   ChangeReason = "node_join"
	ReasonNodeLeave  ChangeReason = "node_leave"
	ReasonNodeRejoin ChangeReason = "node_rejoin"
	ReasonManual     ChangeReason = "manual"
)

// LeaveReason says how a node left (NodeLeaveEvent.Reason).
type LeaveReason string

// Reasons of NodeLeaveEvent.
const (
	// LeaveLeaseExpired: the node's lease ran out (crash, hang or partition
	// from etcd).
	LeaveLeaseExpired LeaveReason = "lease_expired"
	// LeaveGraceful: the node called Stop.
	LeaveGraceful LeaveReason = "graceful_shutdown"
	// LeaveRemovedByAdmin: an operator removed the node.
	LeaveRemovedByAdmin LeaveReason = "removed_by_admin"
)

// PartitionChangeEvent tells that CopyToNode gains partition PartitionID.
// Every node receives the event for every (partition, gaining node); the
// application usually acts only when CopyToNode.ID is its own ID.
type PartitionChangeEvent struct {
	PartitionID string
	// PartitionIndex is the partition number behind PartitionID.
	PartitionIndex int
	// CopyFromNodes are the nodes that serve the partition now and hold its
	// data; empty when no holder of the data lives (see NoSource). A
	// node named here may be offline (Status NodeOffline) when the only
	// holders are away within the rebalance delay.
	CopyFromNodes []*Node
	// CopyToNode is the node that gains the partition.
	CopyToNode *Node
	// ChangeReason is the trigger of the rebalance (ReasonNodeJoin, …).
	ChangeReason ChangeReason
	// OldPrimary and NewPrimary are the primary's node ID before and after
	// the whole change (NewPrimary is the planned one).
	OldPrimary string
	NewPrimary string
	// Promoted: CopyToNode already served the partition as a replica and
	// became its primary; there is nothing to copy.
	Promoted bool
	// CatchUp: CopyToNode held this partition's slot before and kept its
	// data (the same process came back within the rebalance delay, or a
	// restarted process of a node with DurableStorage): copy only what it
	// missed from CopyFromNodes, do not wipe.
	CatchUp bool
	// NoSource: no node that holds the data lives or may come back: every
	// former holder left for good (graceful leave, admin removal, rebalance
	// delay over) or restarted without DurableStorage. CopyToNode serves
	// the partition at once, without data; the application decides what
	// that means (restore from a backup, start empty). It is never said
	// while a holder is alive, away within its rebalance delay, or during
	// maintenance mode.
	NoSource bool
	// Epoch is the partition's epoch when the event was made.
	Epoch     uint64
	Timestamp time.Time
}

// NodeJoinEvent tells that a node joined for the first time.
type NodeJoinEvent struct {
	Node        *Node
	ClusterSize int
	// IsBootstrap: the node is the first member of a new cluster.
	IsBootstrap bool
	Timestamp   time.Time
}

// NodeRejoinEvent tells that a node that was a member before came back.
// It is delivered before the rebalance that the rejoin causes. Whether the
// node still has its data is DataKept, not the event itself: a node that
// registers again after its lease lapsed while its process kept running
// is the same incarnation and lost nothing.
type NodeRejoinEvent struct {
	Node *Node
	// SameIncarnation: the process that left is the one that came back
	// (its lease lapsed, e.g. an etcd outage, a frozen etcd member, a long
	// pause). Its data is intact; back within the rebalance delay it gets
	// its slots back with a catch-up (PartitionChangeEvent.CatchUp).
	SameIncarnation bool
	// DataKept: the node still holds the data it had (SameIncarnation, or
	// a new process of a node with DurableStorage). False: a new process
	// that may have lost it; it receives its partitions again by copy.
	DataKept bool
	// OfflineDuration is the time between LastSeenAt and the rejoin (zero
	// when a restarted process took over its own live membership).
	OfflineDuration time.Duration
	LastSeenAt      time.Time
	// PartitionsBeforeLeave are the IDs of the partitions the node served
	// when it left.
	PartitionsBeforeLeave []string
	Timestamp             time.Time
}

// NodeLeaveEvent tells that a node left the cluster.
type NodeLeaveEvent struct {
	Node *Node
	// Reason is LeaveLeaseExpired, LeaveGraceful or LeaveRemovedByAdmin.
	Reason LeaveReason
	// PartitionsOwned are the partitions the node served as primary,
	// PartitionsReplica those it served as a replica, when it left.
	PartitionsOwned   []string
	PartitionsReplica []string
	Timestamp         time.Time
}

// RebalanceEvent describes one rebalance: OnRebalanceStart receives it
// before the rebalance's partition changes, OnRebalanceComplete after them.
type RebalanceEvent struct {
	// ID numbers the cluster's rebalances.
	ID int64
	// Trigger is ReasonNodeJoin, ReasonNodeLeave, ReasonNodeRejoin or
	// ReasonManual.
	Trigger       RebalanceTrigger
	TriggerNodeID string
	// PartitionsToMove counts the (partition, node) pairs that gain data.
	PartitionsToMove int
	NodesAffected    []string
	Timestamp        time.Time
}

// HealthState is the cluster's health status as one node sees it
// (HealthStatus.Status, ClusterHealthEvent.Status). It is not named
// HealthStatus because that name is HealthCheck's result.
type HealthState string

// Cluster health statuses.
const (
	HealthHealthy  HealthState = "healthy"
	HealthDegraded HealthState = "degraded"
	HealthCritical HealthState = "critical"
)

// ClusterHealthEvent tells that the cluster's health status changed, as
// this node sees it.
type ClusterHealthEvent struct {
	HealthyNodes     int
	UnhealthyNodes   int
	TotalNodes       int
	Status           HealthState
	UnhealthyNodeIDs []string
	// Reasons says why the status is not healthy.
	Reasons   []string
	Timestamp time.Time
}

// HealthStatus is this node's view of the cluster's health (HealthCheck).
type HealthStatus struct {
	Status HealthState `json:"status"`
	// Reasons says why the status is not healthy.
	Reasons []string `json:"reasons,omitempty"`
	// EtcdConnected: this node's watch on etcd is in sync.
	EtcdConnected bool `json:"etcd_connected"`
	// Registered: this node holds its membership.
	Registered            bool     `json:"registered"`
	TotalNodes            int      `json:"total_nodes"`
	HealthyNodes          int      `json:"healthy_nodes"`
	UnhealthyNodeIDs      []string `json:"unhealthy_node_ids,omitempty"`
	UnderReplicated       int      `json:"under_replicated_partitions"`
	PartitionsWithoutNode int      `json:"partitions_without_replica"`
	// PendingHandoffs counts partitions this node is receiving; FailedHandoffs
	// those whose OnPartitionChange handler failed at its last attempt.
	PendingHandoffs int `json:"pending_handoffs"`
	// Maintenance says why placement is frozen; empty when it is not.
	Maintenance string `json:"maintenance,omitempty"`
	// AwayNodes are nodes whose lease expired and whose slots wait for
	// them (Options.RebalanceDelay).
	AwayNodes []string `json:"away_nodes,omitempty"`
	// CordonedNodes and DrainingNodes are under an operator's order
	// (CordonNode, DrainNode); DrainingPartitions counts the partitions
	// the draining nodes still serve or receive.
	CordonedNodes      []string `json:"cordoned_nodes,omitempty"`
	DrainingNodes      []string `json:"draining_nodes,omitempty"`
	DrainingPartitions int      `json:"draining_partitions,omitempty"`
	FailedHandoffs     int      `json:"failed_handoffs"`
	// Handoffs lists this node's failing handoffs; StuckHandoffs counts
	// those failing longer than Options.HandoffTimeout.
	Handoffs      []FailingHandoff `json:"failing_handoffs,omitempty"`
	StuckHandoffs int              `json:"stuck_handoffs"`
	CheckedAt     time.Time        `json:"checked_at"`
}

// Metrics is a summary of this node's counters (GetMetrics). The full set
// is exported in Prometheus format through Options.Registerer.
type Metrics struct {
	NodeID             string        `json:"node_id"`
	IsLeader           bool          `json:"is_leader"`
	Members            int           `json:"members"`
	AssignmentVersion  int64         `json:"assignment_version"`
	PrimaryPartitions  int           `json:"primary_partitions"`
	ReplicaPartitions  int           `json:"replica_partitions"`
	IncomingPartitions int           `json:"incoming_partitions"`
	RebalancesStarted  int64         `json:"rebalances_started"`
	RebalancesDone     int64         `json:"rebalances_completed"`
	HookPanics         int64         `json:"hook_panics"`
	HandoffFailures    int64         `json:"handoff_failures"`
	Uptime             time.Duration `json:"uptime"`
}

// NodeAddr returns the advertised address of member id, or "".
func (c *Cluster) NodeAddr(id string) string {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n.Addr
		}
	}
	return ""
}
