package clusterkit

import (
	"slices"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// endpointGuard owns the endpoint list of a run's etcd client. clientv3
// (v3.7.3) Client.Dial reads the list without the client's lock while
// SetEndpoints rewrites it, a data race the race detector reports (and
// that can dial a torn slice). So the client's own auto-sync
// (Config.AutoSyncInterval) stays off, and every SetEndpoints and every
// Dial of this node — the lease keep-alive's, through leases.WithDialer —
// goes through here, under one mutex. Dial does no I/O (gRPC connects
// lazily), so holding the mutex around it costs nothing; the member list
// that follow is given is fetched outside it (by the etcd upkeep loop).
// Safe for concurrent use.
type endpointGuard struct {
	cli  *clientv3.Client
	mu   sync.Mutex
	last []string // sorted; what set or follow set last; guarded by mu
}

// dial is cli.Dial under the mutex (a leases.Dialer).
func (e *endpointGuard) dial(ep string) (*grpc.ClientConn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cli.Dial(ep)
}

// set makes eps the client's endpoints.
func (e *endpointGuard) set(eps ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setLocked(eps)
}

func (e *endpointGuard) setLocked(eps []string) {
	e.cli.SetEndpoints(eps...)
	e.last = slices.Sorted(slices.Values(eps))
}

// follow sets the endpoints to the client URLs of members' started voters
// (what clientv3's Sync would set) when they differ from the last set, so
// that the node learns members that joined after it and forgets removed
// ones. When own, this node's member's client URL, is one of a started
// voter, it is the only endpoint: a voter's node talks to its own member,
// which runs in this process and forwards to the Raft leader over etcd's
// peer links. A request the client put on another member that is frozen
// (SIGSTOP: its TCP connections stay open) would otherwise hang until
// gRPC's keep-alive gives the connection up (~7 s), and a leader's
// failover write with it. It reports whether it changed the endpoints;
// with no started voter it keeps them.
func (e *endpointGuard) follow(members []*etcdserverpb.Member, own string) bool {
	var eps []string
	for _, m := range members {
		if m.Name != "" && !m.IsLearner {
			if own != "" && slices.Contains(m.ClientURLs, own) {
				eps = []string{own}
				break
			}
			eps = append(eps, m.ClientURLs...)
		}
	}
	if len(eps) == 0 {
		return false
	}
	slices.Sort(eps)
	e.mu.Lock()
	defer e.mu.Unlock()
	if slices.Equal(eps, e.last) {
		return false
	}
	e.setLocked(eps)
	return true
}

// leave replaces the endpoints by others when they are own alone (a
// voter's client on its member, which stopped) and others is not empty,
// and reports whether it did.
func (e *endpointGuard) leave(own string, others []string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(others) == 0 || !slices.Equal(e.last, []string{own}) {
		return false
	}
	e.setLocked(others)
	return true
}
