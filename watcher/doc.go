// Package watcher follows a key prefix in etcd: "get, then watch, never
// miss, never repeat".
//
// Watch reads the prefix once and delivers what it found as the first Batch,
// then watches the prefix for the changes after that read and delivers every
// change, in revision order, as typed Events grouped by revision (all events
// of one etcd transaction come in one Batch). The watcher keeps the state
// it received (key → value and revisions), so that:
//
//   - every Event carries PrevValue, the value last delivered for its key,
//     and consumers need not keep their own copy;
//   - when the watch cannot resume because etcd compacted the revisions it
//     still needed (for example after the client was cut off for a while),
//     the watcher reads the prefix again and delivers the net difference
//     between the last state delivered and the fresh read as one Batch with
//     Resync set. A consumer that applies every Batch in order always ends
//     with exactly etcd's state for the prefix: nothing is lost and no change
//     is delivered twice;
//   - a consumer that falls behind does not make the etcd client buffer
//     without bound: the watcher keeps reading while the consumer is busy,
//     holds up to 1 MiB of changes as they came, and past that coalesces
//     what the consumer has not received into one net difference per key
//     (a Batch with Coalesced set), as a re-read would.
//
// The watch uses clientv3.WithRequireLeader, so a watch on an etcd member
// that has lost its leader fails instead of hanging, and progress
// notifications, so that the watcher knows how far it is in sync even when
// nothing under the prefix changes. When the watch fails for any reason
// other than compaction (no leader, etcd restarted, stream canceled), or
// etcd stays silent for two progress intervals (twice as long after each
// attempt in a row that etcd left silent soon after it began, up to 16
// times: an overloaded etcd is not asked to replay the history again and
// again), the watcher backs off
// (bounded and jittered) and watches again from the last revision it
// received or had confirmed (it drops that revision's events when etcd
// sends them again), re-reading if that revision was compacted meanwhile.
// It never busy-loops and retries until it is closed. Each Watcher uses a
// gRPC watch stream of its own (see Watch).
//
// What the watcher does not do: it does not detect half-open TCP connections
// by itself (set DialKeepAliveTime and DialKeepAliveTimeout on the
// clientv3.Config for that; Connected reports the silence meanwhile). It
// reads the prefix in pages of 1,000 keys at one revision.
package watcher
