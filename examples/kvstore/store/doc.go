// Package store is a replicated key-value store on ClusterKit, the
// library's worked example: ClusterKit says where a key lives (partition,
// primary, replicas) and when data must move (OnPartitionChange); this
// package does the how, over HTTP, with the partition epoch as its fence.
//
// # Client API
//
// GET, PUT and DELETE /kv/{key} on any node. A node that is not the key's
// primary forwards the request to the primary (once: a forwarded request
// that lands on a non-primary is refused with 503). 503 means nothing was
// applied and the request may be retried anywhere; 504 means a write's
// outcome is unknown (it reached some replicas but not a majority in time).
//
// # Modes
//
//   - sync (default): the primary acknowledges a write once a majority of
//     the partition's serving set (primary included) holds it, and answers
//     a read once a majority confirmed that the partition's epoch is still
//     the newest they know. Linearizable (integration/linearizability
//     checks it under faults).
//   - async: the primary acknowledges a write once it applied it and
//     replicates in the background; reads are the primary's alone. Faster,
//     but a primary that crashes loses the writes it had not passed on, and
//     a primary replaced without knowing it may answer stale reads.
//   - server-side: replicates as sync, for thin clients that know nothing of
//     ClusterKit. In sync and async modes a routing client (package client,
//     with a clusterkit.Router following the map in etcd) sends each
//     request straight to the primary; any node still forwards.
//
// # Versions, epochs and take-overs
//
// Every entry carries a Version: the partition epoch in which the primary
// took the write, then the primary's sequence number. Merges keep the newer
// version, so replicated writes, copies and syncs commute, and deletes are
// kept as versioned tombstones.
//
// Every message that could change a node's data or vouch for a primary
// carries the partition's epoch; a node refuses (409, naming the newest
// epoch) a message older than the newest epoch it knows, from its own map
// or from another node. A primary that learns of a newer epoch stops
// acknowledging and answering at once.
//
// Before a node acts as the primary of an epoch it takes the partition
// over: it fences every live member (each records the epoch and sends what
// it holds; a member that does not answer is asked again until it does or
// its lease expires), merges it all, and syncs the result to a majority of
// the serving set. Recent former members are asked once as well, since a
// process whose lease lapsed keeps its data. So a write acknowledged by a
// majority in any earlier epoch is in the new primary's copy, and an older
// primary can no longer gather a majority. The price: a member that hangs
// without losing its lease delays take-overs until its lease expires.
//
// # Migration and rejoin
//
// A node that gains a partition (OnPartitionChange with CopyToNode = this
// node) streams it from a serving node and merges it by version while the
// primary already replicates new writes to it, so the copy never overwrites
// a newer write. Nothing is dropped when a node rejoins: a stale copy cannot
// win against a newer version, and it may be the last copy of something
// ClusterKit declared lost (NoSource).
//
// Data lives in memory: a restarted process starts empty and gets its
// partitions back through the handoff.
package store
