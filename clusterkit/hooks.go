package clusterkit

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Hook handler types. See the On* methods for when each is called.
type (
	// PartitionChangeHandler receives a partition gain. When the event's
	// CopyToNode is this node, the partition stays served by its old
	// replicas until every registered handler returned nil; an error (or a
	// panic) is retried with backoff, and ctx is cancelled when the change
	// is withdrawn or the node stops. On other nodes the result is only
	// counted and logged.
	PartitionChangeHandler func(ctx context.Context, e *PartitionChangeEvent) error
	NodeJoinHandler        func(e *NodeJoinEvent)
	NodeRejoinHandler      func(e *NodeRejoinEvent)
	NodeLeaveHandler       func(e *NodeLeaveEvent)
	RebalanceStartHandler  func(e *RebalanceEvent)
	// RebalanceCompleteHandler receives the rebalance and how long it took.
	RebalanceCompleteHandler func(e *RebalanceEvent, duration time.Duration)
	ClusterHealthHandler     func(e *ClusterHealthEvent)
)

// hookSet holds the registered handlers. Registration may happen at any
// time, from any goroutine; a dispatch uses the handlers registered when it
// runs.
type hookSet struct {
	mu                sync.Mutex
	partitionChange   []PartitionChangeHandler
	nodeJoin          []NodeJoinHandler
	nodeRejoin        []NodeRejoinHandler
	nodeLeave         []NodeLeaveHandler
	rebalanceStart    []RebalanceStartHandler
	rebalanceComplete []RebalanceCompleteHandler
	clusterHealth     []ClusterHealthHandler
}

// get returns a copy of one handler list under the lock.
func get[T any](h *hookSet, list *[]T) []T {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*list)
}

func add[T any](h *hookSet, list *[]T, fn T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*list = append(*list, fn)
}

// The hook contract, common to all seven: every node receives every event
// (filter on the event's node IDs); handlers run on ClusterKit's dispatcher
// goroutines, never on the watch or keep-alive goroutines and never under
// an internal lock, so they may call every lookup (but not Stop); a panic
// is recovered and counted (clusterkit_hook_panics_total). Cluster-level
// events (join, rejoin, leave, rebalance start and complete, health) are
// delivered one at a time, in the order they happened; partition changes
// of one partition are delivered in order, those of different partitions
// concurrently (Options.HookConcurrency at most); OnRebalanceStart comes
// before the rebalance's partition changes and OnRebalanceComplete after
// they all returned. A handler that blocks delays the events queued behind
// it, never the lookups or the etcd session. Register handlers before
// Start to see the events of this node's own join.

// OnPartitionChange registers a handler for partition gains (see
// PartitionChangeHandler).
func (ck *ClusterKit) OnPartitionChange(fn PartitionChangeHandler) {
	add(&ck.hooks, &ck.hooks.partitionChange, fn)
}

// OnNodeJoin registers a handler for nodes joining for the first time.
func (ck *ClusterKit) OnNodeJoin(fn NodeJoinHandler) { add(&ck.hooks, &ck.hooks.nodeJoin, fn) }

// OnNodeRejoin registers a handler for nodes coming back; it runs before
// the rebalance the rejoin causes.
func (ck *ClusterKit) OnNodeRejoin(fn NodeRejoinHandler) { add(&ck.hooks, &ck.hooks.nodeRejoin, fn) }

// OnNodeLeave registers a handler for nodes leaving (lease expiry, graceful
// stop or admin removal).
func (ck *ClusterKit) OnNodeLeave(fn NodeLeaveHandler) { add(&ck.hooks, &ck.hooks.nodeLeave, fn) }

// OnRebalanceStart registers a handler for the start of a rebalance.
func (ck *ClusterKit) OnRebalanceStart(fn RebalanceStartHandler) {
	add(&ck.hooks, &ck.hooks.rebalanceStart, fn)
}

// OnRebalanceComplete registers a handler for the end of a rebalance. It is
// called only for rebalances whose start this node delivered.
func (ck *ClusterKit) OnRebalanceComplete(fn RebalanceCompleteHandler) {
	add(&ck.hooks, &ck.hooks.rebalanceComplete, fn)
}

// OnClusterHealthChange registers a handler for changes of the cluster's
// health status as this node sees it.
func (ck *ClusterKit) OnClusterHealthChange(fn ClusterHealthHandler) {
	add(&ck.hooks, &ck.hooks.clusterHealth, fn)
}

// emit queues a cluster-level event for every handler in list.
func emit[T any](ck *ClusterKit, name string, list *[]T, call func(T), barrier bool) {
	ck.disp.submitCluster(func() {
		for _, fn := range get(&ck.hooks, list) {
			if err := callHook(name, ck.metrics, func() error { call(fn); return nil }); err != nil {
				ck.log.Error("hook failed", zapHook(name), zapErr(err))
			}
		}
	}, barrier)
}
