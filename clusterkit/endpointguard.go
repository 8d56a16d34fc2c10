package clusterkit

import (
	"maps"
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
//
// The client uses the wanted endpoints (set, follow, leave) but those
// marked down (by the member probe, memberprobe.go), unless all of them
// are down. With conns set (every endpoint an http(s) URL), every
// connection to an endpoint the client stops using is closed at once
// (connSet.cut), so that no request or watch stays on a frozen member.
// Safe for concurrent use.
type endpointGuard struct {
	cli   *clientv3.Client
	conns *connSet // nil: connections are left to gRPC (unix-socket endpoints)
	mu    sync.Mutex
	want  []string        // sorted; what set, follow or leave asked for; guarded by mu
	down  map[string]bool // endpoints that do not answer; guarded by mu
	used  []string        // sorted; the client's endpoints; guarded by mu
}

// dial is cli.Dial under the mutex (a leases.Dialer).
func (e *endpointGuard) dial(ep string) (*grpc.ClientConn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cli.Dial(ep)
}

// set makes eps the wanted endpoints.
func (e *endpointGuard) set(eps ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.wantLocked(eps)
}

// wanted returns the wanted endpoints (sorted) and how many are down.
func (e *endpointGuard) wanted() (eps []string, down int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.want), len(e.down)
}

// wantLocked makes eps the wanted endpoints and forgets the marks of
// those no longer wanted.
func (e *endpointGuard) wantLocked(eps []string) {
	e.want = slices.Sorted(slices.Values(eps))
	maps.DeleteFunc(e.down, func(ep string, _ bool) bool { return !slices.Contains(e.want, ep) })
	e.applyLocked()
}

// applyLocked gives the client the wanted endpoints that are not down
// (all wanted ones if every one is down) and cuts the connections to the
// endpoints it no longer uses.
func (e *endpointGuard) applyLocked() {
	use := slices.DeleteFunc(slices.Clone(e.want), func(ep string) bool { return e.down[ep] })
	if len(use) == 0 {
		use = slices.Clone(e.want)
	}
	if slices.Equal(use, e.used) {
		return
	}
	e.cli.SetEndpoints(use...)
	if e.conns != nil {
		for _, ep := range e.used {
			if !slices.Contains(use, ep) {
				e.conns.cut(ep)
			}
		}
	}
	e.used = use
}

// markDown takes ep out of the client's endpoints (see applyLocked)
// until markUp; markUp puts it back. The mark of an endpoint that is no
// longer wanted is forgotten.
func (e *endpointGuard) markDown(ep string) { e.mark(ep, true) }
func (e *endpointGuard) markUp(ep string)   { e.mark(ep, false) }

func (e *endpointGuard) mark(ep string, down bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down[ep] == down || (down && !slices.Contains(e.want, ep)) {
		return
	}
	if down {
		if e.down == nil {
			e.down = map[string]bool{}
		}
		e.down[ep] = true
	} else {
		delete(e.down, ep)
	}
	e.applyLocked()
}

// follow sets the wanted endpoints to the client URLs of members' started
// voters (what clientv3's Sync would set) when they differ from the last
// wanted, so that the node learns members that joined after it and
// forgets removed ones. When own, this node's member's client URL, is one
// of a started voter, it is the only endpoint: a voter's node talks to its
// own member, which runs in this process and forwards to the Raft leader
// over etcd's peer links, and no request of it waits on another member
// that is frozen. It reports whether it changed the wanted endpoints; with
// no started voter it keeps them.
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
	if slices.Equal(eps, e.want) {
		return false
	}
	e.wantLocked(eps)
	return true
}

// leave replaces the wanted endpoints by others when they are own alone
// (a voter's client on its member, which stopped) and others is not
// empty, and reports whether it did.
func (e *endpointGuard) leave(own string, others []string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(others) == 0 || !slices.Equal(e.want, []string{own}) {
		return false
	}
	e.wantLocked(others)
	return true
}
