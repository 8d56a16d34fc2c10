// Package placement decides where data lives: key → partition → nodes.
//
// It is pure and deterministic: no I/O, no goroutines, no clocks, no
// randomness and no package-level mutable state, so every node computing
// the same thing from the same inputs gets the same answer, and every
// function is safe for concurrent use.
//
// # Keys
//
// PartitionOf maps a key to one of P partitions with a fast 64-bit hash
// (xxHash64, named by HashName) modulo P. The mapping never changes.
//
// # Partitions
//
// Plan maps each partition to an ordered list of R = min(replication
// factor, number of nodes) distinct nodes, the first being the primary.
// It takes the previous assignment (nil for the first plan) and the live
// nodes with their zones and weights, and returns a new Assignment. After
// any sequence of joins, leaves and weight changes, each result is:
//
//   - Deterministic: the same inputs, in any order of the nodes, give an
//     identical assignment, replica order included.
//   - Balanced: each node holds within ±1 of its share of the P·R replica
//     slots and of the P primaries. Shares are proportional to weight, a
//     node's replica share is capped at P (it cannot hold a partition twice),
//     and where zones make that impossible (a zone may hold at most one
//     replica of a partition, see below) a zone's share is capped at what the
//     zone rule lets it hold and the rest goes to the other zones by weight.
//   - Minimal in movement: every (partition, node) pair that balance allows
//     is kept. A join moves the newcomer's share, and about its share of the
//     primaries, to it; a leave refills exactly the slots the leaver held and
//     moves nothing else. Surplus replicas are dropped from the newest
//     positions first and never from a primary when avoidable.
//   - Safe for failover: a partition whose primary is gone gets as its new
//     primary one of its surviving replicas (which has the data), never a
//     node that did not hold it, as long as a surviving replica exists.
//   - Spread: the replicas of a partition are on distinct nodes; when there
//     are at least R distinct zones, on distinct zones; with fewer zones,
//     spread as evenly over the zones as the zone sizes allow (every zone
//     holds ⌊R/Z⌋ or ⌈R/Z⌉ replicas of each partition when it has the nodes).
//     Nodes that set no zone share the zone "".
//   - Total when asked too much: a replication factor above the node count
//     puts every partition on every node.
//
// The replicas of a partition are ordered primary first, then the nodes that
// held it before in their previous order, then the newcomers by ID.
//
// Diff compares two assignments partition by partition (replicas gained and
// lost, primary before and after), which is what a node needs to decide
// what to copy and what to drop.
//
// Bad input (no nodes, a partition count or replication factor below 1,
// empty or duplicate node IDs, negative, NaN or infinite weights, a previous
// assignment with another partition count) is an error wrapping
// ErrInvalidInput; nothing in this package panics on any input.
package placement
