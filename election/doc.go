// Package election elects one leader among candidates that share an etcd
// key prefix, and fences the leader's writes.
//
// Every candidate puts a key "<prefix>/<lease id in hex>" bound to its
// lease, and the candidate whose key has the lowest create revision leads:
// the keys and protocol of etcd's concurrency.Election, so candidates and
// observers that use etcd's package interoperate with this one.
//
// What this package adds:
//
//   - CampaignOnLease campaigns on a lease the caller already keeps alive
//     (a node's membership lease), starting no keep-alive of its own: one
//     lease, one renewer. Campaign does the same on a concurrency.Session.
//   - A candidate watches its own key while it waits, and verifies before
//     returning that the key still exists with its create revision and is
//     the first under the prefix. etcd's Campaign can return nil without
//     holding the key when the candidate's lease ended while it waited
//     (etcd issue #11051); ours returns ErrElectionLost instead of a false
//     leadership.
//   - A Leadership carries a context that is cancelled when leadership ends:
//     the leader key is deleted or replaced, the lease's keeper gives up
//     (WithLeaseDone, the session's Done), or the holder calls Resign or
//     Close.
//   - Fencing: Leadership.Token is the leader key's create revision, which
//     only grows from one term to the next; Leadership.Cmp is the comparison
//     to put in the If of the caller's own Txn, and Leadership.Txn runs such
//     a fenced Txn. A deposed leader's fenced Txn does not succeed.
//   - Observe reports the current leader and every change, including "no
//     leader" (which concurrency.Election.Observe never reports), and
//     survives watch compaction and reconnects.
//
// What it does not guarantee: the leadership context is a local, delayed
// view. Between the moment etcd deletes the leader key (lease expiry,
// revocation) and the moment the old leader's context is cancelled, the old
// leader may still believe it leads; during a network partition that window
// lasts until the lease's keeper gives up (about one lease TTL; without
// WithLeaseDone, until a watch sees the key go). Only writes fenced with Cmp
// (or made through Txn) are safe against that window; anything else the
// leader does (talking to other services, writing elsewhere) is not fenced
// by this package. Attach Token to such writes if their receivers can check
// it.
//
// Every etcd request made by this package carries a timeout and
// clientv3.WithRequireLeader, so that a member cut off from its cluster
// fails fast instead of hanging; the clean-up of a failed campaign is also
// bounded by the client's life (closing the client ends it at once).
package election

import "errors"

// Errors returned (wrapped, test with errors.Is) by this package.
var (
	// ErrInvalidArgument reports a bad argument; the message names it.
	ErrInvalidArgument = errors.New("election: invalid argument")
	// ErrElectionLost reports that a campaign cannot win any more (its key
	// is gone: the lease expired or was revoked, etcd #11051; or the lease
	// does not exist) or that a held leadership ended because the leader
	// key was deleted or replaced or the lease's keeper gave up. It is also
	// the cause of a Leadership's context in those cases (see
	// context.Cause).
	ErrElectionLost = errors.New("election: leadership lost")
	// ErrLeaseDone reports that the lease is no longer kept alive: the
	// channel given with WithLeaseDone closed (for Campaign, the
	// concurrency.Session ended). It is wrapped together with
	// ErrElectionLost.
	ErrLeaseDone = errors.New("election: lease no longer kept alive")
	// ErrSessionDone is ErrLeaseDone, under the name Campaign's callers
	// know.
	ErrSessionDone = ErrLeaseDone
	// ErrNotLeader reports that a fenced operation was refused because this
	// Leadership no longer leads.
	ErrNotLeader = errors.New("election: not leader")
	// ErrResigned is the cause of a Leadership's context after Resign.
	ErrResigned = errors.New("election: resigned")
	// ErrClosed is the cause of a Leadership's context after Close.
	ErrClosed = errors.New("election: leadership closed")
)
