package clusterkit

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Hook handler types. See the On* methods for when each is called, and
// "Hooks" in the package documentation for the contract they share:
// delivery order, concurrency, retries and panics.
type (
	// PartitionChangeHandler receives a partition gain. When the event's
	// CopyToNode is this node, the partition stays served by its old
	// replicas until every registered handler returned nil; an error (or a
	// panic) is retried with backoff, and ctx is cancelled when the change
	// is withdrawn or the node stops. On other nodes the result is only
	// counted and logged.
	PartitionChangeHandler func(ctx context.Context, e *PartitionChangeEvent) error
	// NodeJoinHandler receives a node's first join. It runs once, on the
	// sequencer, in order with the other cluster-level events.
	NodeJoinHandler func(e *NodeJoinEvent)
	// NodeRejoinHandler receives a node's return, before the rebalance the
	// return causes. It runs once, on the sequencer.
	NodeRejoinHandler func(e *NodeRejoinEvent)
	// NodeLeaveHandler receives a node's departure. It runs once, on the
	// sequencer.
	NodeLeaveHandler func(e *NodeLeaveEvent)
	// RebalanceStartHandler receives a rebalance before any of its
	// partition changes. It runs once, on the sequencer.
	RebalanceStartHandler func(e *RebalanceEvent)
	// RebalanceCompleteHandler receives the rebalance and how long it took,
	// after every partition change submitted before it returned. It runs
	// once, on the sequencer.
	RebalanceCompleteHandler func(e *RebalanceEvent, duration time.Duration)
	// ClusterHealthHandler receives a change of the cluster's health status
	// as this node sees it. It runs once, on the sequencer.
	ClusterHealthHandler func(e *ClusterHealthEvent)
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

// notifier queues hook calls on the dispatcher: everything that derives
// events needs only this, not the node.
type notifier struct {
	hooks   *hookSet
	disp    *dispatcher
	metrics *metrics
	log     *zap.Logger
}

// notify queues a cluster-level event for every handler in list, which
// must be one of n.hooks' lists.
func notify[T any](n *notifier, name string, list *[]T, call func(T), barrier bool) {
	n.disp.submitCluster(func() {
		for _, fn := range get(n.hooks, list) {
			if err := callHook(name, n.metrics, func() error { call(fn); return nil }); err != nil {
				n.log.Error("hook failed", zapHook(name), zapErr(err))
			}
		}
	}, barrier)
}
