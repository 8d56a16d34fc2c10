package clusterkit

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/embedetcd"
)

// Bounds of a graceful etcd leave.
const (
	// massLeaveWait bounds how long a member that stops with the others
	// (a deploy, docker compose down) keeps serving the nodes that are
	// still revoking their leases.
	massLeaveWait = 3 * time.Second
	// leaveReadTimeout bounds the read of who stays.
	leaveReadTimeout = time.Second
	// transferTimeout bounds the leadership hand-off before a removal.
	transferTimeout = time.Second
)

// leaveEtcd ends this node's part in etcd on a graceful Stop, after its
// lease was revoked. It never makes Stop fail: whatever happens, the
// member's data dir is either live (the next start restarts from it) or
// set aside after a confirmed removal (the next start joins anew).
//
// A voter removes itself when the voters that stay (their nodes live and
// not leaving) are a quorum of the smaller cluster; otherwise (other voters
// are down or leaving too: everything is stopping at once) it keeps its
// membership and data, and first waits, at most massLeaveWait, for the
// other nodes still leaving, so that they can revoke their leases before
// the quorum goes. A learner always removes itself. Before a removal it
// hands Raft leadership to a staying voter and closes its member's client
// connections, so that every client (this node's and the others') fails
// over at once and no request reaches a member that is being removed.
//
// Membership is read from the member's local state and from one
// linearizable read of the member records; no Maintenance request is sent
// to any member (one that reaches a member being removed or closed can
// crash that member's process: etcd #21966, #22189).
func (r *run) leaveEtcd(ctx context.Context) {
	m := r.member.Load()
	if m == nil {
		return
	}
	members := m.Members()
	voters := 0
	for _, mm := range members {
		if !mm.IsLearner {
			voters++
		}
	}
	var staying []embedetcd.MemberInfo // voters other than this one that stay
	deadline := time.Now().Add(massLeaveWait)
	for {
		live, leaving, err := r.liveNodes(ctx)
		staying = staying[:0]
		for _, mm := range members {
			if mm.ID != m.ID() && !mm.IsLearner && live[mm.Name] {
				staying = append(staying, mm)
			}
		}
		if err == nil && (m.IsLearner() || len(staying) >= quorum(voters-1) && voters > 1) {
			break
		}
		// Keep the membership. While other nodes are leaving, or, when
		// the other voters are leaving too (everything stops at once),
		// while any node is left, keep serving them (bounded).
		// A failed read (no leader for a moment while another stopping
		// member hands leadership over) is retried within the bound too.
		massStop := len(staying) < voters-1
		waitFor := err != nil || leaving > 0 || massStop && len(live) > 0
		if !waitFor || time.Now().After(deadline) || ctx.Err() != nil {
			r.ck.log.Info("keeping the etcd membership: too few other voters stay", zap.Int("voters", voters),
				zap.Int("staying", len(staying)), zap.Int("nodes_left", len(live)+leaving), zap.NamedError("read_error", err))
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.removeOwnMember(ctx, m, staying)
}

// quorum is the majority of n voters.
func quorum(n int) int { return n/2 + 1 }

// liveNodes reads the member records (linearizably, failing fast without
// an etcd leader) and returns the other nodes that are live and not
// leaving, and how many other nodes are leaving right now.
func (r *run) liveNodes(ctx context.Context) (live map[string]bool, leaving int, err error) {
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), leaveReadTimeout)
	defer cancel()
	resp, err := r.cli.Get(rctx, r.ck.keys.membersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	live = map[string]bool{}
	for _, kv := range resp.Kvs {
		var rec memberRecord
		if json.Unmarshal(kv.Value, &rec) != nil || rec.ID == r.ck.opts.NodeID {
			continue
		}
		if rec.State == memberActive {
			live[rec.ID] = true
		} else {
			leaving++
		}
	}
	return live, leaving, nil
}

// removeOwnMember removes this node's member through the staying voters:
// leadership first goes to one of them, then this member's clients are
// closed, then the removal is asked. A confirmed removal sets r.etcdLeft,
// so that teardown sets the data aside once the member stopped.
func (r *run) removeOwnMember(ctx context.Context, m *embedetcd.Member, staying []embedetcd.MemberInfo) {
	var urls []string
	for _, mm := range staying {
		urls = append(urls, mm.ClientURLs...)
	}
	if len(staying) > 0 {
		tctx, cancel := context.WithTimeout(ctx, transferTimeout)
		if err := m.TransferLeadership(tctx, staying[0].ID); err != nil {
			r.ck.log.Warn("etcd leadership hand-off failed; the others elect a leader", zapErr(err))
		}
		cancel()
	}
	if len(urls) > 0 {
		r.eps.set(urls...)
		if err := recordPeers(&r.ck.opts, urls); err != nil {
			r.ck.log.Warn("recording etcd peers failed", zapErr(err))
		}
	}
	m.CloseClients()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := r.cli.MemberRemove(rctx, m.ID())
	if err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
		// Not known to be out: keep the data, a restart finds out.
		r.ck.log.Warn("leaving the etcd cluster failed; the member keeps its data", zapErr(err))
		return
	}
	r.etcdLeft.Store(true)
	r.ck.log.Info("left the etcd cluster", zap.Int("voters_staying", len(staying)))
}
