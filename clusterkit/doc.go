// Package clusterkit coordinates the nodes of an application cluster on
// etcd: it tells every node where data goes (key → partition → primary and
// replicas) and when to move it (hooks), while the application keeps how
// (its storage and replication).
//
// # Modes
//
// With Options.Etcd.Endpoints a node is a plain client of an existing etcd
// cluster. Without, it runs an embedded etcd member: the first node
// bootstraps one, later nodes join through an existing node's HTTPAddr
// (JoinAddr, authenticated by ClusterToken) and become learner → voter
// members up to Embedded.MaxVoters, plain clients after that.
//
// # Lookups
//
// GetPartition, GetPrimary, GetReplicas, GetNodes, IsPrimary, IsReplica and
// GetMyNodeID read an immutable snapshot through an atomic pointer: no
// locks, no allocations, and they keep answering from the last map while
// etcd is unreachable. Returned values are shared: treat them as read-only.
//
// # Rebalancing and handoff
//
// One node leads (etcd election on the members' leases). After membership
// changes settle (a short debounce) it plans the partition map with package
// placement and writes it in one Txn fenced on its leadership, so a deposed
// leader's write fails. The map keeps, per partition, the planned nodes
// (Target), the nodes serving now (primary first) and the incoming ones. A
// node that gains a partition is incoming: every node receives
// OnPartitionChange, and the gaining node records in etcd that it is ready
// once all its handlers returned nil (they are retried with backoff until
// then); only then does the leader move it into the serving set and drop
// surplus replicas. A departed primary is replaced at once by a surviving
// replica; when no replica survives, the planned nodes serve at once and
// the event says NoSource. Every change of a partition's serving set bumps
// its Epoch, which the application can attach to writes to fence a stale
// primary. A node that registers anew (a new incarnation: a restart, or a
// lost and renewed lease) is treated as having lost its data: what it
// served is handed to it again.
//
// # Hooks
//
// Seven hooks report what happens: OnNodeJoin, OnNodeRejoin, OnNodeLeave,
// OnRebalanceStart, OnPartitionChange, OnRebalanceComplete and
// OnClusterHealthChange. Their contract:
//
//   - Every node receives every event; filter on the event's node IDs
//     (usually PartitionChangeEvent.CopyToNode.ID == GetMyNodeID()).
//   - Handlers run on ClusterKit's dispatcher goroutines, never on the
//     watch or lease goroutines and never under an internal lock: they may
//     call every lookup and every operation except Stop and Halt.
//   - Cluster-level events (join, rejoin, leave, rebalance start and
//     complete, health) run one at a time, in the order they happened.
//   - Partition changes of one partition run in order; those of different
//     partitions run concurrently, at most Options.HookConcurrency at once.
//     A partition change submitted after a cluster-level event starts after
//     that event's handlers returned.
//   - OnRebalanceStart comes before the rebalance's partition changes;
//     OnRebalanceComplete after all of them returned (a barrier), and only
//     for rebalances whose start this node delivered.
//   - OnNodeRejoin comes before the rebalance the return causes.
//   - Handlers registered for one hook run in registration order; a
//     handler registered while events are queued sees the events that
//     start after it was added. Register before Start to see this node's
//     own join.
//   - A panic is recovered, logged and counted
//     (clusterkit_hook_panics_total); for a partition change it counts as
//     an error.
//   - Retries: for a partition this node gains, the handlers are called
//     again with backoff (100 ms doubling to 10 s, jittered) until all of
//     them return nil; the node then records that it is ready and the
//     leader lets it serve. The context is cancelled when the change is
//     withdrawn (a later map no longer plans it) or the node stops. Other
//     events, and partition changes of other nodes, run once; their errors
//     are only logged and counted.
//   - A handler that blocks delays the events queued behind it (the other
//     partitions' changes keep running), never the lookups or the etcd
//     session. Stop cancels the handlers' contexts, drops queued events and
//     waits for running handlers to return.
//
// # Leaving
//
// Stop leaves gracefully (graceful_shutdown); a crash, hang or partition
// from etcd ends the node's lease after Options.LeaseTTL (lease_expired);
// RemoveNode removes a node (removed_by_admin), which then stays out. Halt
// stops a node as a crash would.
//
// # What is not guaranteed
//
// ClusterKit does not move data and does not fence the application's own
// writes: between etcd dropping a node and that node noticing, it may still
// act as primary for up to about one lease TTL. Attach Partition.Epoch to
// writes where the receiver can check it.
package clusterkit
