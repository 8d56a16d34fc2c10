package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/embedetcd"
)

// Timing of the etcd membership upkeep (embedded mode).
const (
	// upkeepInterval is how often every node looks at etcd's members.
	upkeepInterval = time.Second
	// settleBound is how long the leader lets a learner (or a member
	// that never started) be before it removes it: a join takes well
	// under a second, so one still there has failed or its process died.
	settleBound = 10 * time.Second
	// goneBound is how long the leader sees a voter's node gone, beyond
	// the rebalance delay, before it removes the voter: a node restarting
	// runs its member a moment before it registers again.
	goneBound = 5 * time.Second
	// joinDelay is how long etcd must lack voters before a plain node
	// joins: a voter restarting (its member removed itself on Stop) is
	// back well within it and takes its seat again itself.
	joinDelay = 5 * time.Second
)

// etcdUpkeepLoop keeps etcd's membership whole in embedded mode, every
// upkeepInterval until the run ends. It runs on the run's WaitGroup.
//
// The clusterkit leader removes stale members (see staleMember), one per
// round: only it has the authoritative view of which nodes are away
// within the rebalance delay and of maintenance, and a single remover
// cannot take two voters out at once behind each other's quorum check.
// Every node without a member joins as a voter when etcd has lacked
// voters (fewer than Embedded.MaxVoters, no learner) for joinDelay, no node
// is leaving, and it is the lowest NodeID among the live nodes without a
// member (one joiner at a time: etcd admits one learner at a time).
func (r *run) etcdUpkeepLoop() {
	seen := map[uint64]time.Time{} // unsettled members and voters of gone nodes: first seen as leader
	var short time.Time            // since when etcd lacks voters (zero: it does not)
	t := time.NewTicker(upkeepInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		if r.leaving.Load() {
			return
		}
		// Before the list: a stopped member cannot answer it, and a
		// voter's client may talk to its own member alone (see follow).
		r.avoidStoppedMember()
		r.dropRemovedMember()
		members, err := r.etcdMembers()
		if err != nil {
			r.ck.log.Debug("etcd upkeep: member list failed", zapErr(err))
			continue
		}
		r.noteEtcdRoles(members)
		if r.eps.follow(members, r.ownClientURL()) {
			r.ck.log.Debug("etcd endpoints follow the members", zap.Strings("endpoints", r.cli.Endpoints()))
		}
		if r.ck.IsLeader() {
			r.removeStaleMember(members, seen, time.Now())
		} else {
			clear(seen)
		}
		if !r.lacksVoters(members) {
			short = time.Time{}
			continue
		}
		if short.IsZero() {
			short = time.Now()
		}
		if time.Since(short) >= joinDelay && r.member.Load() == nil && !r.joining() && r.nextJoiner(members) {
			r.joinAsVoter()
		}
	}
}

// ownClientURL is the client URL of this node's running etcd member, or ""
// when it runs none (a plain client, or its member stopped).
func (r *run) ownClientURL() string {
	m := r.member.Load()
	if m == nil || memberStopped(m) {
		return ""
	}
	return m.ClientURL()
}

// memberStopped reports whether m's server has stopped.
func memberStopped(m *embedetcd.Member) bool {
	select {
	case <-m.Done():
		return true
	default:
		return false
	}
}

// avoidStoppedMember points the client at the other voters this node's
// member last knew of once that member has stopped (removed while the
// node was frozen, or failed): follow had left a voter's client on its
// own member alone, and the member list that follow needs cannot be asked
// of a stopped member.
func (r *run) avoidStoppedMember() {
	m := r.member.Load()
	if m == nil || !memberStopped(m) {
		return
	}
	others := m.OtherVoterURLs()
	if r.eps.leave(m.ClientURL(), others) {
		r.ck.log.Info("this node's etcd member stopped; the client goes to the other voters", zap.Strings("endpoints", others))
	}
}

// dropRemovedMember forgets this node's member once the cluster removed
// it while it ran (the leader took the node for gone: frozen beyond the
// delay, or restarting slowly): its server has stopped on its own, its
// data is set aside, and the node is a plain client until the upkeep
// makes it join anew.
func (r *run) dropRemovedMember() {
	m := r.member.Load()
	if m == nil || !errors.Is(m.Err(), embedetcd.ErrRemoved) || r.joining() {
		return // a background join or settle cleans up its own member
	}
	_ = m.Stop() // already stopped; waits for its goroutines
	cfg, err := r.embedConfig()
	if err == nil {
		err = embedetcd.SetAside(cfg)
	}
	if err != nil {
		r.ck.log.Warn("setting aside the data of this node's removed etcd member failed", zapErr(err))
		return
	}
	r.member.Store(nil)
	r.ck.log.Warn("this node's etcd member was removed from the cluster while it ran; its data is set aside")
}

// etcdMembers lists etcd's members linearizably (failing fast without a
// Raft leader).
func (r *run) etcdMembers() ([]*etcdserverpb.Member, error) {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(r.ctx), requestTimeout)
	defer cancel()
	resp, err := r.cli.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// etcdNodes is the leader's view of the nodes, for staleMember.
type etcdNodes struct {
	live        map[string]bool // nodes with a member record
	away        map[string]bool // planned away: within the rebalance delay or held by maintenance
	maintenance bool
}

// nodesForUpkeep reads the view for staleMember and nextJoiner.
func (r *run) nodesForUpkeep() etcdNodes {
	n := etcdNodes{live: map[string]bool{}, away: map[string]bool{}}
	r.follower.read(func(v *view) {
		for id := range v.members {
			n.live[id] = true
		}
		if v.assign != nil {
			n.maintenance = v.assign.Maintenance != nil
			for _, pn := range v.assign.Planned {
				if pn.away() {
					n.away[pn.ID] = true
				}
			}
		}
	})
	return n
}

// removeStaleMember removes the member staleMember picks, if any.
func (r *run) removeStaleMember(members []*etcdserverpb.Member, seen map[uint64]time.Time, now time.Time) {
	nodes := r.nodesForUpkeep()
	trackSuspects(members, nodes, seen, now)
	id, why := staleMember(members, nodes, seen, now)
	if id == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, requestTimeout)
	defer cancel()
	_, err := r.cli.MemberRemove(ctx, id)
	if err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
		r.ck.log.Warn("removing a stale etcd member failed", zap.String("member", fmt.Sprintf("%x", id)), zap.String("why", why), zapErr(err))
		return
	}
	delete(seen, id)
	r.ck.log.Info("removed a stale etcd member", zap.String("member", fmt.Sprintf("%x", id)), zap.String("why", why))
}

// unsettled reports whether m is a learner or never started (no name).
func unsettled(m *etcdserverpb.Member) bool { return m.IsLearner || m.Name == "" }

// suspect reports whether m is unsettled or a voter whose node is gone
// (no member record, not away).
func suspect(m *etcdserverpb.Member, nodes etcdNodes) bool {
	return unsettled(m) || !nodes.live[m.Name] && !nodes.away[m.Name]
}

// trackSuspects records in seen when each suspect member was first seen,
// and forgets the members that are no longer suspect or left.
func trackSuspects(members []*etcdserverpb.Member, nodes etcdNodes, seen map[uint64]time.Time, now time.Time) {
	for id := range seen {
		if !slices.ContainsFunc(members, func(m *etcdserverpb.Member) bool { return m.ID == id && suspect(m, nodes) }) {
			delete(seen, id)
		}
	}
	for _, m := range members {
		if _, ok := seen[m.ID]; !ok && suspect(m, nodes) {
			seen[m.ID] = now
		}
	}
}

// staleMember picks the member to remove now (0: none) and says why: a
// suspect (see suspect) seen for settleBound (unsettled) or goneBound. Nothing is removed during
// maintenance, and a voter only if the voters of live nodes stay a quorum
// of the smaller cluster.
func staleMember(members []*etcdserverpb.Member, nodes etcdNodes, seen map[uint64]time.Time, now time.Time) (uint64, string) {
	if nodes.maintenance {
		return 0, ""
	}
	voters, liveVoters := 0, 0
	for _, m := range members {
		if !m.IsLearner {
			voters++
			if m.Name != "" && nodes.live[m.Name] {
				liveVoters++
			}
		}
	}
	for _, m := range members {
		since, ok := seen[m.ID]
		bound := goneBound
		if unsettled(m) {
			bound = settleBound
		}
		if !suspect(m, nodes) || !ok || now.Sub(since) < bound {
			continue
		}
		if !m.IsLearner && liveVoters < quorum(voters-1) {
			continue
		}
		why := fmt.Sprintf("voter of node %q, which is gone", m.Name)
		if unsettled(m) {
			why = fmt.Sprintf("learner or unstarted member %q not promoted within %v", m.Name, settleBound)
		}
		return m.ID, why
	}
	return 0, ""
}

// lacksVoters reports whether etcd has fewer than MaxVoters voters and no
// learner or unstarted member (a join under way).
func (r *run) lacksVoters(members []*etcdserverpb.Member) bool {
	for _, m := range members {
		if unsettled(m) {
			return false
		}
	}
	return len(members) < r.ck.opts.Embedded.MaxVoters
}

// nextJoiner reports whether this node is the one to join etcd now (see
// lacksVoters): no node is leaving (a deploy or a mass stop is under way),
// and this node is the lowest NodeID among the live nodes without a member.
// A node whose record still names an etcd member that etcd no longer has
// (removed while the node was frozen: it drops that member only once it
// notices, seconds after its thaw) is passed over, so that the others do
// not wait for it while etcd runs short of voters.
func (r *run) nextJoiner(members []*etcdserverpb.Member) bool {
	names, urls := map[string]bool{}, map[string]bool{}
	for _, m := range members {
		names[m.Name] = true
		for _, u := range m.ClientURLs {
			urls[u] = true
		}
	}
	me := r.ck.opts.NodeID
	lowest := true
	r.follower.read(func(v *view) {
		for id, rec := range v.members {
			holdsRemoved := rec.EtcdClientURL != "" && !urls[rec.EtcdClientURL]
			if rec.State != memberActive || !names[id] && id < me && !holdsRemoved {
				lowest = false
			}
		}
	})
	return lowest && !names[me]
}

// joinAsVoter starts a background join of this plain node's member.
func (r *run) joinAsVoter() {
	cfg, err := r.embedConfig()
	if err != nil {
		r.ck.log.Warn("etcd upkeep: cannot join etcd", zapErr(err))
		return
	}
	r.ck.log.Info("etcd has too few voters; this node joins as one")
	r.startJoin(cfg, r.cli.Endpoints())
}
