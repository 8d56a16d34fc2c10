package embedetcd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
)

// Timeouts of the etcd calls made by Join. Each call is also bounded by
// Join's context, except the clean-up after a failure, which runs under
// its own fresh context.
const (
	callTimeout     = 5 * time.Second  // one membership call (add, promote, remove, list)
	probeTimeout    = 3 * time.Second  // the membership check before restarting from a data dir
	rollbackTimeout = 15 * time.Second // undoing a failed join
)

// errStaleData: the data dir belongs to an earlier member with the same
// peer URL; it has been moved aside.
var errStaleData = errors.New("embedetcd: stale data dir")

// Join makes this member part of the cluster reachable at endpoints (client
// URLs of existing members, "http://host:port") and returns once it is a
// ready voter, or an error when ctx ends first. Join is safe to call
// concurrently from many processes (or goroutines with distinct Configs)
// against one cluster: etcd admits one learner at a time and Join retries
// "too many learner members" and "unhealthy cluster" with jittered backoff.
//
// What Join does depends on cfg.Dir and on the cluster's member list:
//
//   - No data: the member is added as a learner (MemberAddAsLearner),
//     started, and promoted once it has caught up. A never-started member
//     with this peer URL (left by an earlier attempt that died before
//     starting) is reused instead of added.
//   - Data of a current member (same peer URL, same ID): the member
//     restarts with it, and is promoted if it is still a learner.
//   - Data of a member that is no longer in the cluster (removed): the data
//     is moved aside to Dir/member.removed-<time> and the member joins anew.
//   - Data, but the cluster cannot be reached, or the member's absence
//     cannot be confirmed by a quorum, within a few seconds (for example
//     the whole cluster is restarting): the member restarts from its data,
//     as a quorum may need it. If it was in fact removed, etcd stops it
//     and Member.Err reports ErrRemoved; the next Join moves the data aside.
//
// The membership check uses a serializable member list (answered without
// a quorum), so a member of a cluster that lost its quorum can restart and
// restore it.
//
// It fails with ErrMemberExists if cfg.Name is a current member but cfg.Dir
// holds no data for it (remove the member or restore its data dir), or if
// the name or peer URL belong to another member.
//
// If Join fails after its learner was added (start failed, ctx ended), it
// removes the learner again under a fresh context bounded by 15 s, stops
// the server and deletes the member data it created; the error wraps
// ErrJoin and ctx.Err() or etcd's last error. If ctx ends just as the
// promotion commits, Join returns the running voter rather than undo it.
func Join(ctx context.Context, cfg Config, endpoints []string) (*Member, error) {
	return join(ctx, cfg, endpoints, nil)
}

// join is Join with an optional hook that tests use to cut a join short
// between start and promotion.
func join(ctx context.Context, cfg Config, endpoints []string, beforePromote func()) (*Member, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: Join %q: no endpoints given", ErrInvalidConfig, s.Name)
	}
	for i, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: Join %q: endpoints[%d] %q must be a URL like http://host:port", ErrInvalidConfig, s.Name, i, ep)
		}
	}
	cli, err := s.membershipClient(endpoints)
	if err != nil {
		return nil, fmt.Errorf("embedetcd: join %q: %w", s.Name, err)
	}
	defer cli.Close()
	j := &joiner{s: s, cli: cli, beforePromote: beforePromote}
	return j.join(ctx)
}

// membershipClient is the client of Join and Settle: endpoints, the
// member's client TLS, callTimeout to dial, errors-only logging.
func (s *settings) membershipClient(endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   slices.Clone(endpoints),
		DialTimeout: callTimeout,
		TLS:         s.clientTLS,
		Logger:      s.log.Named("client").WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel)),
	})
	if err != nil {
		return nil, fmt.Errorf("client for %v: %w", endpoints, err)
	}
	return cli, nil
}

// joiner holds the state of one Join call; it is used by one goroutine.
type joiner struct {
	s             *settings
	cli           *clientv3.Client
	beforePromote func() // nil outside tests
}

func (j *joiner) join(ctx context.Context) (*Member, error) {
	s := j.s
	// A serializable list answers without a quorum (a cluster that lost
	// its quorum needs this member back); only the absence of this member,
	// which leads to moving its data aside, is confirmed linearizably.
	members, listErr := j.list(ctx, probeTimeout, true)
	if hasWAL(s.Dir) {
		if listErr == nil {
			if mine, named := j.find(members); mine == nil && named == nil {
				members, listErr = j.list(ctx, probeTimeout, false)
			}
		}
		if listErr != nil {
			if ctx.Err() != nil {
				return nil, j.fail("list members", ctx.Err(), listErr)
			}
			s.log.Warn("cluster membership unknown; restarting from the data dir", zap.Error(listErr))
			return j.restart(ctx, nil)
		}
		mine, named := j.find(members)
		switch {
		case mine != nil && (mine.Name == s.Name || mine.Name == ""):
			m, err := j.restart(ctx, mine)
			if !errors.Is(err, errStaleData) {
				return m, err
			}
			// Fall through to a fresh join with the data moved aside.
		case mine != nil:
			return nil, fmt.Errorf("%w: peer URL %s of %q belongs to member %q (id %x)", ErrMemberExists, s.peerURL, s.Name, mine.Name, mine.ID)
		case named != nil:
			return nil, fmt.Errorf("%w: member %q (id %x) has peer URLs %v, not %s (PeerAddr changed?)", ErrMemberExists, s.Name, named.ID, named.PeerURLs, s.peerURL)
		default:
			if err := moveAsideIfPresent(s, "removed"); err != nil {
				return nil, err
			}
		}
	} else if err := moveAsideIfPresent(s, "incomplete"); err != nil {
		return nil, err
	}

	// Fresh join: look at the cluster first, so that a conflict is an
	// error and a leftover of our own is reused.
	b := newBackoff(50*time.Millisecond, time.Second)
	for listErr != nil {
		if err := b.wait(ctx); err != nil {
			return nil, j.fail("list members", err, listErr)
		}
		members, listErr = j.list(ctx, callTimeout, true)
	}
	mine, named := j.find(members)
	switch {
	case mine != nil && mine.Name == "":
		s.log.Info("reusing a never-started member with this peer URL", zap.String("id", fmt.Sprintf("%x", mine.ID)))
		return j.startAndPromote(ctx, mine.ID, mine.IsLearner, time.Now())
	case mine != nil && mine.Name != s.Name:
		return nil, fmt.Errorf("%w: peer URL %s of %q belongs to member %q (id %x)", ErrMemberExists, s.peerURL, s.Name, mine.Name, mine.ID)
	case mine != nil:
		return nil, fmt.Errorf("%w: member %q (id %x, peer URL %s) is in the cluster but %s holds no data for it; remove it from the cluster or restore its data dir",
			ErrMemberExists, mine.Name, mine.ID, s.peerURL, s.Dir)
	case named != nil:
		return nil, fmt.Errorf("%w: name %q is used by member %x with peer URLs %v", ErrMemberExists, s.Name, named.ID, named.PeerURLs)
	}

	if err := j.checkVoters(ctx); err != nil {
		return nil, err
	}
	id, learner, err := j.addLearner(ctx)
	if err != nil {
		// The add may have committed although its reply was lost: remove
		// a never-started member with this peer URL.
		if _, rerr := j.rollback(nil, 0); rerr != nil {
			return nil, fmt.Errorf("%w (and clean-up failed: %v)", err, rerr)
		}
		return nil, err
	}
	return j.startAndPromote(ctx, id, learner, time.Now())
}

// restart starts the member from its data dir and promotes it if it is
// still a learner. mine is the cluster's record of it, nil if unknown.
func (j *joiner) restart(ctx context.Context, mine *etcdserverpb.Member) (*Member, error) {
	s := j.s
	var wantID uint64
	if mine != nil {
		wantID = mine.ID
	}
	m, err := startMember(ctx, s, "", "", embed.ClusterStateFlagExisting, wantID)
	if errors.Is(err, errStaleData) {
		s.log.Warn("data dir belongs to an earlier member with this peer URL", zap.Error(err))
		if merr := moveAsideIfPresent(s, "stale"); merr != nil {
			return nil, merr
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if !m.etcd.Server.IsLearner() {
		return m, nil
	}
	m.joinAdded, m.joinReady = time.Now(), time.Now()
	if err := j.promote(ctx, m); err != nil {
		return j.undo(m, m.ID(), err)
	}
	return m, nil
}

// startAndPromote starts the member that was added with id and promotes
// it if learner; on failure it undoes the join.
func (j *joiner) startAndPromote(ctx context.Context, id uint64, learner bool, added time.Time) (*Member, error) {
	s := j.s
	members, err := j.list(ctx, callTimeout, false)
	b := newBackoff(50*time.Millisecond, time.Second)
	for err != nil {
		if werr := b.wait(ctx); werr != nil {
			return j.undo(nil, id, j.fail("list members", werr, err))
		}
		members, err = j.list(ctx, callTimeout, false)
	}
	ic, err := j.initialCluster(members, id)
	if err != nil {
		return j.undo(nil, id, err)
	}
	m, err := startMember(ctx, s, ic, "", embed.ClusterStateFlagExisting, id)
	if err != nil {
		return j.undo(nil, id, fmt.Errorf("%w: %w", ErrJoin, err))
	}
	m.joinAdded, m.joinReady = added, time.Now()
	if learner {
		if j.beforePromote != nil {
			j.beforePromote()
		}
		if err := j.checkVoters(ctx); err != nil {
			return j.undo(m, id, err)
		}
		if err := j.promote(ctx, m); err != nil {
			return j.undo(m, id, err)
		}
	}
	m.joinVoter = time.Now()
	s.log.Info("joined the cluster as a voter", zap.String("id", fmt.Sprintf("%x", id)),
		zap.Duration("add-to-ready", m.joinReady.Sub(added)), zap.Duration("add-to-voter", m.joinVoter.Sub(added)))
	return m, nil
}

// checkVoters fails with ErrEnoughVoters when the cluster has
// Config.MaxVoters voters (never when MaxVoters is 0), per a linearizable
// member list.
func (j *joiner) checkVoters(ctx context.Context) error {
	if j.s.MaxVoters == 0 {
		return nil
	}
	members, err := j.list(ctx, callTimeout, false)
	b := newBackoff(50*time.Millisecond, time.Second)
	for err != nil {
		if werr := b.wait(ctx); werr != nil {
			return j.fail("list members", werr, err)
		}
		members, err = j.list(ctx, callTimeout, false)
	}
	voters := 0
	for _, mem := range members {
		if !mem.IsLearner {
			voters++
		}
	}
	if voters >= j.s.MaxVoters {
		return fmt.Errorf("%w: %d voters, MaxVoters %d (member %q)", ErrEnoughVoters, voters, j.s.MaxVoters, j.s.Name)
	}
	return nil
}

// addLearner adds this member as a learner, retrying refusals that pass
// with time. learner is false only when an earlier attempt's never-started
// record turned out to be a voter.
func (j *joiner) addLearner(ctx context.Context) (id uint64, learner bool, err error) {
	s := j.s
	b := newBackoff(50*time.Millisecond, time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := j.cli.MemberAddAsLearner(cctx, []string{s.peerURL})
		cancel()
		if err == nil {
			s.log.Info("added as learner", zap.String("id", fmt.Sprintf("%x", resp.Member.ID)))
			return resp.Member.ID, true, nil
		}
		switch {
		case errors.Is(err, rpctypes.ErrPeerURLExist):
			// Our own earlier attempt may have committed although its
			// reply was lost; anything else is a conflict.
			members, lerr := j.list(ctx, callTimeout, false)
			if lerr == nil {
				mine, _ := j.find(members)
				if mine != nil && mine.Name == "" {
					return mine.ID, mine.IsLearner, nil
				}
				if mine != nil {
					return 0, false, fmt.Errorf("%w: peer URL %s belongs to member %q (id %x)", ErrMemberExists, s.peerURL, mine.Name, mine.ID)
				}
			}
		case permanent(err):
			return 0, false, fmt.Errorf("%w: add learner %q: %w", ErrJoin, s.Name, err)
		}
		s.log.Debug("add learner refused; retrying", zap.Error(err))
		if werr := b.wait(ctx); werr != nil {
			return 0, false, j.fail("add learner", werr, err)
		}
	}
}

// promote promotes the running learner m to a voter, retrying until it has
// caught up ("can only promote a learner member which is in sync with
// leader") or ctx ends.
func (j *joiner) promote(ctx context.Context, m *Member) error {
	b := newBackoff(20*time.Millisecond, 500*time.Millisecond)
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := j.cli.MemberPromote(cctx, m.ID())
		cancel()
		switch {
		case err == nil, errors.Is(err, rpctypes.ErrMemberNotLearner):
			return nil
		case errors.Is(err, rpctypes.ErrMemberNotFound):
			return fmt.Errorf("%w: promote %q (id %x): %w", ErrRemoved, j.s.Name, m.ID(), err)
		case permanent(err):
			return fmt.Errorf("%w: promote %q: %w", ErrJoin, j.s.Name, err)
		}
		select {
		case <-m.Done():
			return fmt.Errorf("%w: promote %q: %w", ErrJoin, j.s.Name, m.Err())
		default:
		}
		if werr := b.wait(ctx); werr != nil {
			return j.fail("promote", werr, err)
		}
	}
}

// undo cleans up after a failed join (see rollback) and returns the error
// to report, or m if it turned out to be a voter after all.
func (j *joiner) undo(m *Member, id uint64, cause error) (*Member, error) {
	kept, rerr := j.rollback(m, id)
	if kept {
		return m, nil
	}
	if rerr != nil {
		return nil, fmt.Errorf("%w (and clean-up failed: %v)", cause, rerr)
	}
	return nil, cause
}

// rollback removes the member this join added or restarted (id), or, if
// id is 0, a never-started member with this peer URL; a started member
// that this join does not own is never touched. It then stops m (if not
// nil) and deletes the member data once the member is known to be out of
// the cluster. If m runs and is already a voter, nothing is undone and
// kept is true. It runs under its own context bounded by rollbackTimeout,
// because the caller's context may be over.
func (j *joiner) rollback(m *Member, id uint64) (kept bool, err error) {
	s := j.s
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	b := newBackoff(50*time.Millisecond, time.Second)
	out := false
	for !out {
		members, lerr := j.list(ctx, callTimeout, false)
		err = lerr
		if lerr == nil {
			mine, _ := j.find(members)
			switch {
			case mine == nil, id != 0 && mine.ID != id, id == 0 && mine.Name != "":
				out = true // not in the cluster, or not ours
				continue
			case !mine.IsLearner && m != nil:
				select {
				case <-m.Done():
				default:
					s.log.Info("promotion committed as the join was ending; keeping the voter")
					return true, nil
				}
			}
			cctx, ccancel := context.WithTimeout(ctx, callTimeout)
			_, err = j.cli.MemberRemove(cctx, mine.ID)
			ccancel()
			if err == nil || errors.Is(err, rpctypes.ErrMemberNotFound) {
				s.log.Info("removed the member of a failed join", zap.String("id", fmt.Sprintf("%x", mine.ID)))
				out = true
				continue
			}
		}
		if werr := b.wait(ctx); werr != nil {
			break
		}
	}
	if m != nil {
		_ = m.Stop()
	}
	if !out {
		return false, fmt.Errorf("embedetcd: remove member %q after failed join: %w", s.Name, err)
	}
	if rerr := os.RemoveAll(filepath.Join(s.Dir, "member")); rerr != nil {
		return false, fmt.Errorf("embedetcd: delete data of member %q after failed join: %w", s.Name, rerr)
	}
	return false, nil
}

// list returns the cluster's members, with the call bounded by timeout. A
// serializable list is answered from one member's local state, without a
// quorum, and may be slightly stale.
func (j *joiner) list(ctx context.Context, timeout time.Duration, serializable bool) ([]*etcdserverpb.Member, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := j.cli.MemberList(cctx, opts...)
	if err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// find returns the member with this member's peer URL and the member with
// its name (either may be nil; they may be the same).
func (j *joiner) find(members []*etcdserverpb.Member) (mine, named *etcdserverpb.Member) {
	for _, mem := range members {
		if slices.Contains(mem.PeerURLs, j.s.peerURL) {
			mine = mem
		}
		if mem.Name == j.s.Name {
			named = mem
		}
	}
	return mine, named
}

// initialCluster builds etcd's --initial-cluster for joining as id. etcd
// matches members by peer URL and needs every member listed, so members
// that have not started yet (no name) get a placeholder name.
func (j *joiner) initialCluster(members []*etcdserverpb.Member, id uint64) (string, error) {
	var parts []string
	self := false
	for _, mem := range members {
		name := mem.Name
		switch {
		case mem.ID == id:
			name, self = j.s.Name, true
		case name == "":
			name = fmt.Sprintf("unstarted-%x", mem.ID)
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	if !self {
		return "", fmt.Errorf("%w: member %q (id %x) is no longer in the cluster", ErrJoin, j.s.Name, id)
	}
	return strings.Join(parts, ","), nil
}

// fail builds the error for a join step cut short by its context.
func (j *joiner) fail(step string, ctxErr, last error) error {
	return fmt.Errorf("%w: %s %q: %w (last error: %v)", ErrJoin, step, j.s.Name, ctxErr, last)
}

// permanent reports whether an etcd error will not go away by retrying.
func permanent(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		switch ee.Code() {
		case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
			return true
		}
	}
	return false
}

// backoff is a jittered exponential backoff; it is used by one goroutine.
type backoff struct {
	next, max time.Duration
}

func newBackoff(first, max time.Duration) *backoff { return &backoff{next: first, max: max} }

// wait sleeps the next interval (±25 % jitter) or until ctx ends.
func (b *backoff) wait(ctx context.Context) error {
	d := b.next
	d += time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	b.next = min(2*b.next, b.max)
	return sleepCtx(ctx, d)
}
