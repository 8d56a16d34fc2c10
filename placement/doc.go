// Package placement decides where data lives: key → partition → nodes.
//
// It is pure and deterministic: no I/O, no goroutines, no clocks, no
// randomness and no package-level mutable state. Every function is safe for
// concurrent use, and every node computing the same thing from the same
// inputs gets the same answer.
//
// # Keys
//
// PartitionOf maps a key to one of P partitions with a fast 64-bit hash
// (XXH64, named by HashName) modulo P. The mapping never changes.
//
// # Partitions
//
// Plan maps each partition to an ordered list of R = min(replication factor,
// number of nodes) distinct nodes, the first being the primary, from the
// previous assignment (nil for the first plan) and the live nodes with their
// zones and weights. After any sequence of joins, leaves and weight changes
// the result is:
//
//   - Deterministic: the same inputs, in any order of the nodes, give an
//     identical assignment, replica order included. Planning again with
//     nothing changed moves no replica.
//   - Balanced: each node holds the floor or the ceiling of its share of the
//     P·R replica slots, so within ±1 of it. Shares are proportional to
//     weight, capped at P (a node cannot hold a partition twice); a zone's
//     total is capped at what the zone rule lets it hold (P per zone when
//     there are at least R zones) and the rest goes to the other zones by
//     weight. Primaries likewise: the floor or ceiling of each node's
//     weighted share of P. Failover (below) can make that impossible for a
//     plan: then primaries are within ±1 of the share if any choice is, and
//     otherwise failover wins over balance until the next plan.
//   - Minimal in movement: every previous (partition, node) pair is kept
//     unless the node left, the zone rule or the replica count forbids it,
//     or the node holds more than balance allows; a node over its quota
//     hands a partition straight to a node under quota, which is one move
//     per slot. So a join moves about the newcomer's share P·R/(N+1) of
//     replica slots and P/(N+1) of primaries, and a leave refills the slots
//     the leaver held. Extra moves happen only where the rules force them:
//     with zones, a node can only fill a slot in a partition that lacks its
//     zone, and a heavy node whose share grows may have to join partitions
//     where no slot opened. A node gives up replicas it does not lead, and
//     newer positions, first.
//   - Safe on failover: a partition whose primary left the cluster gets one
//     of its surviving replicas (which has the data) as its new primary,
//     never a node that did not hold it, as long as a surviving replica
//     exists. A primary moved away by rebalancing while alive is not a
//     failover: it still has the data and hands it over.
//   - Spread: the replicas of a partition are on distinct nodes; when there
//     are at least R distinct zones, on distinct zones; with fewer zones,
//     as evenly as the zone sizes allow (each zone holds ⌊R/Z⌋ or ⌈R/Z⌉
//     replicas of each partition when it has that many nodes, and a zone
//     with fewer nodes holds the partition on all of them). Nodes that set
//     no zone share the zone "".
//   - Total when asked too much: a replication factor above the node count
//     puts every partition on every node.
//
// The replicas of a partition are ordered: the primary, then the nodes that
// held it before in their previous order, then the newcomers by ID.
//
// Diff compares two assignments partition by partition (replicas gained and
// lost, primary before and after), which is what a node needs to decide what
// to copy and what to drop.
//
// Bad input (no nodes, a partition count outside [1, MaxPartitions], a
// replication factor below 1, an empty or duplicate node ID, a negative,
// NaN or infinite weight, more than MaxReplicaSlots replica slots, a
// previous assignment with another partition count) is an error wrapping
// ErrInvalidInput that names the problem; nothing in this package panics on
// any input.
package placement
