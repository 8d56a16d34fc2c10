// Package embedetcd starts, joins and stops an embedded etcd member
// (go.etcd.io/etcd/server/v3/embed) for ClusterKit's embedded mode.
//
// Three ways in, one type out:
//
//   - [Start] bootstraps a new one-member cluster, or restarts this member
//     if Config.Dir already holds its data.
//   - [Join] adds this member to an existing cluster through the client URLs
//     of its members: it is added as a learner, started, and promoted to a
//     voter once it has caught up (a voter is never added directly: a voter
//     that never starts wedges the cluster). Join also restarts a member
//     whose data dir belongs to a current member, and moves the data dir of
//     a removed member aside.
//   - Both return a running, ready [*Member]; [Member.Stop] stops it.
//
// Which node bootstraps and which ones join, and how many voters a cluster
// should have, is the caller's decision; this package only provides the
// mechanism.
//
// # Mutual TLS
//
// With Config.TLS a member serves its client and peer ports over https
// only and requires a client certificate signed by the given CA; its own
// clients present its certificate (see [TLSFiles]). Certificates are the
// caller's business (ClusterKit issues them with internal/pki).
//
// # Concurrency of joins
//
// etcd allows one learner at a time ("too many learner members") and,
// unless Config.DisableStrictReconfigCheck is set on the member handling the
// request, refuses a member change until that member has been connected to
// a quorum for 5 s ("unhealthy cluster"; measured: the third member of a
// cluster joins about 5.3 s after the second instead of about 40 ms). Join retries both with jittered backoff until its
// context ends, so any number of concurrent joins (in one process or many)
// queue up through etcd itself and all succeed.
//
// # Clean-up guarantees
//
// A Join that fails after its learner was added removes that learner again
// (with a fresh, bounded context) and deletes the member data it created,
// so a failed join never leaves a half-added member that blocks later joins.
// The same holds for a restarted member that is still a learner and cannot
// be promoted. A member that Join did not add is never removed.
// If the process dies between the learner add and the start, the next Join
// with the same PeerAddr finds that never-started learner and reuses it.
//
// # Ports
//
// Client URLs may use port 0: a free port is chosen just before the server
// starts (so the member advertises a concrete URL) and is read back with
// [Member.ClientURL]. Peer URLs must be concrete, because other members learn
// them before this member starts. [DefaultAddrs] derives both from a base
// address (ClusterKit's HTTPAddr) in a documented, deterministic way.
//
// Only plain HTTP is supported for now (no TLS, no auth).
package embedetcd

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (or a
// context error, or etcd's own error) and name the operation and the
// offending field or value.
var (
	// ErrInvalidConfig: a Config field or a Join endpoint is invalid.
	ErrInvalidConfig = errors.New("embedetcd: invalid config")
	// ErrMemberExists: the member's name or peer URL is already used by a
	// member of the cluster that this data dir cannot restart (for example
	// the name is a member but the data dir is empty).
	ErrMemberExists = errors.New("embedetcd: member already in cluster")
	// ErrStopped: the etcd server stopped before it was ready, or stopped on
	// its own while running (see Member.Err).
	ErrStopped = errors.New("embedetcd: server stopped")
	// ErrRemoved: the member was removed from its cluster and its server
	// stopped (see Member.Err).
	ErrRemoved = errors.New("embedetcd: member removed from cluster")
	// ErrJoin: Join could not add or promote the member before its context
	// ended; the error also wraps the context error and etcd's last error.
	ErrJoin = errors.New("embedetcd: join failed")
	// ErrEnoughVoters: Join did not make this member a voter because the
	// cluster has Config.MaxVoters voters already; nothing of it is left in
	// the cluster.
	ErrEnoughVoters = errors.New("embedetcd: cluster has enough voters")
)
