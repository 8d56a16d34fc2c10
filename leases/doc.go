// Package leases keeps one key in etcd bound to a lease for as long as its
// owner is alive: a node's membership record.
//
// Register creates the key atomically (it never overwrites another holder's
// key), keeps the lease alive in a goroutine owned by the returned
// Registration, and watches the key. Done is closed when the registration
// ends, and Err tells why:
//
//   - ErrLeaseLost: the lease expired, was revoked by someone else, or could
//     not be renewed within its TTL (etcd unreachable). Done closes no later
//     than the lease's expiry as estimated from the send time of the last
//     acknowledged keep-alive, so the owner never believes it is registered
//     after etcd has dropped the key.
//   - ErrKeyDeleted: someone else deleted the key (for example an admin
//     removing the node) while the lease was alive.
//   - ErrKeyReplaced: the key was rebound to another lease, for example by a
//     restarted incarnation of the same node that proved it was the previous
//     holder (WithPreviousLease).
//   - nil: the owner called Close (graceful leave: the lease is revoked and
//     the key deleted at once) or Abandon (keep-alive stops, nothing is
//     revoked, and the key expires after its TTL, as after a crash).
//
// Duplicates and restarts. A second Register of a key that is bound to a live
// lease fails with ErrKeyInUse. Because a crashed process's key outlives it
// by up to a TTL, a restarting process can either prove it is the previous
// holder by passing the lease id it persisted (Registration.LeaseID, used
// with WithPreviousLease) and take the key over at once, or let Register
// wait, bounded by the old lease's remaining TTL and by ctx, for the old
// lease to expire. If the old lease is renewed while Register waits, or is
// still there when the wait ends, the holder is alive and Register returns
// ErrKeyInUse.
//
// Fencing. Registration.IsHolder returns a comparison that a caller can put
// in its own Txn to make a write conditional on still holding the key. The
// package itself promises nothing about writes made outside such a Txn: Done
// closing is a notification, not a fence.
//
// Timing. Every etcd request is bounded by the request timeout
// (DefaultRequestTimeout, see WithRequestTimeout) and by the caller's ctx.
// Keep-alives are sent every TTL/3. They do not go through the client's
// load balancer but through connections the Registration dials to each of
// the client's endpoints, so that an etcd member that keeps its connections
// open but answers nothing (frozen, partitioned away, stuck forwarding to a
// dead leader) cannot hold a renewal up: when a keep-alive is not answered
// within TTL/4, or fails, the next one goes to the next endpoint, while the
// first may still answer; the endpoint that answered is used first next
// time. With one bad member of three, a renewal is late by at most TTL/4
// (measured: every renewal gap below 1.2 s for a TTL of 2 s). Renewal gives
// up at the lease's estimated expiry. etcd removes an expired lease's key
// about TTL + 0.25–0.45 s after the last keep-alive; after an etcd leader
// change it renews every lease to its full TTL (plus an election timeout),
// so a crash at that moment is seen later.
//
// The Registration holds one gRPC connection per etcd endpoint of the
// client (besides the client's own), with the client's TLS, credentials and
// gRPC options; it closes them when it ends.
package leases
