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
// members up to Embedded.MaxVoters, plain clients after that. The leader
// removes learners that were never promoted and the voters of nodes gone
// beyond RebalanceDelay (keeping the quorum, not during maintenance), and a
// plain node then takes the free seat.
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
// surplus replicas. Every change of a partition's serving set bumps its
// Epoch, which the application can attach to writes to fence a stale
// primary.
//
// # A process is not its lease
//
// A node's membership is an etcd lease, but the node is its process:
// Node.Incarnation is drawn once per process (New) and kept when a running
// process registers again after its lease lapsed (an etcd outage, a frozen
// etcd member, a long pause). Such a node kept its data. Only a new
// process may have lost it, and Options.DurableStorage says it did not.
//
// When a lease expires, the node's primaries fail over at once to
// surviving replicas, but its Target slots stay reserved for
// Options.RebalanceDelay (the node is "away", Cluster.AwayNodes). Back
// within the delay, it receives exactly its old slots again, as a catch-up
// (PartitionChangeEvent.CatchUp, with CopyFromNodes) when it kept its
// data, as a copy when it did not; no other node gains anything. After the
// delay, or at once after a graceful leave, an admin removal or
// EndRebalanceDelay, new replicas are placed elsewhere. When more than
// Options.Maintenance.Share of the nodes leave within its Window, the
// leader enters maintenance mode: primaries still fail over, but nothing
// else is placed and no slot is given up until the nodes are back or
// SetMaintenance(ctx, false).
//
// How to read the events:
//
//   - PartitionChangeEvent.NoSource is said only when no holder of the
//     data lives or may come back: every node that served the partition
//     left for good (graceful, removed, or its delay is over) or restarted
//     without DurableStorage. While a holder is away within its delay (or
//     during maintenance) the partition keeps naming it, offline, instead.
//   - PartitionChangeEvent.CatchUp: CopyToNode held the slot before and
//     kept its data: copy only what it missed; do not wipe.
//   - OnNodeRejoin fires for every return after a leave event.
//     NodeRejoinEvent.SameIncarnation says it is the same process (its
//     lease lapsed; nothing lost); DataKept says its data survived (the
//     same process, or DurableStorage). A new process without durable
//     storage (DataKept false) receives its partitions by full copy.
//   - A process that takes its record over before the old lease expired
//     (the same process after a short etcd outage) causes no event at all.
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
// from etcd ends the node's lease after Options.LeaseTTL (lease_expired,
// its slots wait for Options.RebalanceDelay); RemoveNode removes a node
// (removed_by_admin), which then stays out. Halt stops a node as a crash
// would.
//
// # What is not guaranteed
//
// ClusterKit does not move data and does not fence the application's own
// writes: between etcd dropping a node and that node noticing, it may still
// act as primary for up to about one lease TTL. Attach Partition.Epoch to
// writes where the receiver can check it.
package clusterkit
