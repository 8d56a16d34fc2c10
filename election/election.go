package election

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

const (
	// opTimeout bounds every single etcd request this package makes. It is
	// below etcd's own request timeout (5 s + 2 × election timeout), so a
	// proposal that etcd cannot commit fails here first.
	opTimeout = 5 * time.Second
	// minBackoff and maxBackoff bound the wait between retries of a failed
	// etcd request (doubling from min to max).
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// CampaignOption configures CampaignOnLease.
type CampaignOption func(*campaignOptions)

type campaignOptions struct {
	leaseDone <-chan struct{}
}

// WithLeaseDone gives the channel that the lease's keeper closes when it
// stops keeping the lease alive (for example leases.Registration.Done, or
// concurrency.Session.Done). The campaign, and a leadership it wins, end
// when it closes (cause ErrElectionLost and ErrLeaseDone), even if etcd
// cannot be reached to see the lease go. Without it they end only when etcd
// deletes the key (lease expired or revoked), as seen by a watch. A nil
// channel is the same as no option.
func WithLeaseDone(done <-chan struct{}) CampaignOption {
	return func(o *campaignOptions) { o.leaseDone = done }
}

// CampaignOnLease blocks until this candidate leads the election on prefix,
// or ctx ends, or the lease ends, and returns the Leadership. It starts no
// keep-alive: the lease is the caller's, who keeps it alive (for example a
// leases.Registration, so that leadership lives and dies with membership)
// and revokes it.
//
// prefix names the election; a trailing "/" is optional ("/a/leader" and
// "/a/leader/" are the same election). The candidate's key is
// "<prefix>/<lease in hex>", bound to the lease, with value (Observe
// reports it); the candidate whose key has the lowest create revision
// leads. Keys and protocol are those of concurrency.Election, so candidates
// and observers that use etcd's package interoperate. At most one campaign
// per lease and prefix may run at a time (they would share one key). If the
// key already exists on this lease (a leadership ended with Close), the
// candidate keeps its place and token, and its value is updated.
//
// While it waits, the candidate watches the key just before its own (the
// next to lead) and its own key: if its own key is deleted or rebound (the
// lease expired or was revoked, an operator deleted it) it fails at once
// with ErrElectionLost, which also covers etcd #11051 (etcd's Campaign can
// return nil after the candidate's key vanished). Before returning it
// checks, in one Txn, that its key still exists with its create revision
// and is the first under the prefix. Transient etcd errors (no leader,
// timeouts, compaction, broken watches) are retried with backoff.
//
// It returns:
//   - the Leadership, whose context the caller watches;
//   - an error wrapping ErrElectionLost if the candidate's key vanished or
//     the lease does not exist, also wrapping ErrLeaseDone if the channel
//     given with WithLeaseDone closed;
//   - an error wrapping ctx.Err() if ctx ended;
//   - an error wrapping ErrInvalidArgument for a nil client, a zero lease
//     or an empty prefix.
//
// On every error the candidate's key is deleted if it carries the lease
// (bounded by 5 s and by the client's life), so that no abandoned candidacy
// stays queued. Every etcd request carries a timeout and
// clientv3.WithRequireLeader.
//
// CampaignOnLease is safe for concurrent use on different leases.
func CampaignOnLease(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, prefix, value string, opts ...CampaignOption) (*Leadership, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: client is nil", ErrInvalidArgument)
	}
	if lease == clientv3.NoLease {
		return nil, fmt.Errorf("%w: lease is 0 (NoLease)", ErrInvalidArgument)
	}
	name, err := electionName(prefix)
	if err != nil {
		return nil, err
	}
	var o campaignOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	c := &campaign{
		cli:       cli,
		lease:     lease,
		leaseDone: o.leaseDone,
		keyPrefix: name + "/",
		key:       fmt.Sprintf("%s/%x", name, lease),
		value:     value,
	}
	return c.run(ctx)
}

// Campaign is CampaignOnLease on the session's lease, ended with the
// session: CampaignOnLease(ctx, s.Client(), s.Lease(), prefix, value,
// WithLeaseDone(s.Done())). The session is the caller's: the caller creates
// it (its TTL is the failover time after a crash), keeps it for as long as
// it campaigns or leads, and closes it; closing the session ends the
// leadership. A nil session is an error wrapping ErrInvalidArgument.
func Campaign(ctx context.Context, s *concurrency.Session, prefix, value string) (*Leadership, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: session is nil", ErrInvalidArgument)
	}
	return CampaignOnLease(ctx, s.Client(), s.Lease(), prefix, value, WithLeaseDone(s.Done()))
}

// electionName validates prefix and returns it without trailing slashes.
func electionName(prefix string) (string, error) {
	name := strings.TrimRight(prefix, "/")
	if name == "" {
		return "", fmt.Errorf("%w: prefix %q is empty (want e.g. \"/clusterkit/<cluster>/leader/\")", ErrInvalidArgument, prefix)
	}
	return name, nil
}

// campaign is the state of one CampaignOnLease call.
type campaign struct {
	cli       *clientv3.Client
	lease     clientv3.LeaseID
	leaseDone <-chan struct{} // nil: not given
	keyPrefix string          // election name + "/"
	key       string          // our key: keyPrefix + lease in hex
	value     string
}

func (c *campaign) run(ctx context.Context) (*Leadership, error) {
	select {
	case <-c.leaseDone:
		return nil, c.fail(fmt.Errorf("%w: %w", ErrElectionLost, ErrLeaseDone))
	default:
	}
	token, rev, err := c.enter(ctx)
	if err != nil {
		return nil, c.fail(err)
	}
	// The term's monitor starts now: it ends the candidacy as soon as our
	// key goes or the lease is done, while we wait for our turn.
	l := newLeadership(ctx, c.cli, c.leaseDone, c.key, token, rev+1)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	backoff := minBackoff
	for {
		err := c.waitPredecessors(wctx, token)
		if err == nil {
			if err = c.verify(wctx, token); err == nil {
				return l, nil
			}
		}
		if cause := c.over(ctx, l, err); cause != nil {
			return nil, c.fail(cause)
		}
		// Transient (no etcd leader, a broken watch, a timeout): keep our
		// key, hence our place, and look again.
		if !sleepCtx(wctx, backoff) {
			return nil, c.fail(c.over(ctx, l, err))
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// over returns why the campaign cannot go on after err (and then ends the
// candidacy's monitor), or nil if err is transient.
func (c *campaign) over(ctx context.Context, l *Leadership, err error) error {
	var cause error
	switch {
	case l.ctx.Err() != nil: // our key went, or the lease is done
		cause = context.Cause(l.ctx)
	case ctx.Err() != nil:
		cause = ctx.Err()
	case errors.Is(err, ErrElectionLost):
		cause = err
	default:
		return nil
	}
	l.end(cause)
	return cause
}

// enter puts our key bound to the lease if it does not exist (keeping an
// existing one, and its create revision, if it carries our lease), retrying
// transient errors. It returns the key's create revision (the token) and
// the revision from which the key is known as returned.
func (c *campaign) enter(ctx context.Context) (token, rev int64, err error) {
	backoff := minBackoff
	for {
		token, rev, err = c.tryEnter(ctx)
		switch {
		case err == nil || errors.Is(err, ErrElectionLost):
			return token, rev, err
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return 0, 0, fmt.Errorf("%w: lease %x not found", ErrElectionLost, int64(c.lease))
		}
		select {
		case <-c.leaseDone:
			return 0, 0, fmt.Errorf("%w: %w", ErrElectionLost, ErrLeaseDone)
		default:
		}
		if !sleepCtx(ctx, backoff) {
			return 0, 0, ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *campaign) tryEnter(ctx context.Context) (token, rev int64, err error) {
	tctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), opTimeout)
	defer cancel()
	resp, err := c.cli.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0)).
		Then(clientv3.OpPut(c.key, c.value, clientv3.WithLease(c.lease))).
		Else(clientv3.OpGet(c.key)).
		Commit()
	if err != nil {
		return 0, 0, fmt.Errorf("put key %s: %w", c.key, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return 0, 0, fmt.Errorf("put key %s: gone between the compare and the get", c.key)
	}
	kv := kvs[0]
	if clientv3.LeaseID(kv.Lease) != c.lease {
		return 0, 0, fmt.Errorf("%w: key %s exists bound to lease %x, not to this campaign's lease %x", ErrElectionLost, c.key, kv.Lease, int64(c.lease))
	}
	if string(kv.Value) == c.value {
		return kv.CreateRevision, resp.Header.Revision, nil
	}
	// Ours from an earlier term (Close keeps the key): keep the place and
	// publish the new value.
	presp, err := c.cli.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(c.key), "=", kv.CreateRevision)).
		Then(clientv3.OpPut(c.key, c.value, clientv3.WithLease(c.lease))).
		Commit()
	if err != nil {
		return 0, 0, fmt.Errorf("update value of key %s: %w", c.key, err)
	}
	if !presp.Succeeded {
		return 0, 0, fmt.Errorf("update value of key %s: key changed meanwhile", c.key)
	}
	return kv.CreateRevision, presp.Header.Revision, nil
}

// waitPredecessors returns nil once no key under the prefix has a create
// revision below token, as etcd's concurrency package does: it watches for
// the deletion of the newest such key (the one that leads right before us)
// and looks again, so that each candidate watches one key.
func (c *campaign) waitPredecessors(ctx context.Context, token int64) error {
	for {
		gctx, cancel := context.WithTimeout(ctx, opTimeout)
		resp, err := c.cli.Get(gctx, c.keyPrefix, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(token-1))...)
		cancel()
		if err != nil {
			return fmt.Errorf("read predecessors of %s: %w", c.key, err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		// From the revision after the read: a watch on a future revision is
		// served at once, one on a past revision only at etcd's next sync
		// of unsynced watchers (every 100 ms).
		if err := waitDelete(ctx, c.cli, string(resp.Kvs[0].Key), resp.Header.Revision+1); err != nil {
			return err
		}
	}
}

// waitDelete returns nil when key is deleted at or after revision rev, or
// the watch's error, or ctx's.
func waitDelete(ctx context.Context, cli *clientv3.Client, key string, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range cli.Watch(wctx, key, clientv3.WithRev(rev), clientv3.WithFilterPut()) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch predecessor %s: %w", key, err)
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("watch predecessor %s: closed", key)
}

// verify checks, in one Txn, that our key exists with create revision
// token and is the first key of the election. It returns an error wrapping
// ErrElectionLost if our key is gone or replaced, and another error for a
// transient failure or if a key older than ours still exists.
func (c *campaign) verify(ctx context.Context, token int64) error {
	vctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := c.cli.Txn(vctx).
		If(clientv3.Compare(clientv3.CreateRevision(c.key), "=", token)).
		Then(clientv3.OpGet(c.keyPrefix, clientv3.WithFirstCreate()...)).
		Else(clientv3.OpGet(c.key)).
		Commit()
	if err != nil {
		return fmt.Errorf("verify key %s: %w", c.key, err)
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if !resp.Succeeded {
		if len(kvs) == 0 {
			return fmt.Errorf("%w: key %s (create revision %d) is gone (lease expired or revoked while waiting, etcd #11051)", ErrElectionLost, c.key, token)
		}
		return fmt.Errorf("%w: key %s has create revision %d, want %d", ErrElectionLost, c.key, kvs[0].CreateRevision, token)
	}
	if len(kvs) == 0 || string(kvs[0].Key) != c.key {
		return fmt.Errorf("verify key %s: an older candidate still exists", c.key)
	}
	return nil
}

// fail deletes our key if it still carries our lease (best effort, bounded)
// and returns err annotated with the operation.
func (c *campaign) fail(err error) error {
	// Not under the campaign's ctx (it may be what ended), but under the
	// client's own context, so that closing the client ends this clean-up
	// at once.
	dctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(c.cli.Ctx()), opTimeout)
	defer cancel()
	_, _ = c.cli.Txn(dctx).
		If(clientv3.Compare(clientv3.LeaseValue(c.key), "=", c.lease)).
		Then(clientv3.OpDelete(c.key)).
		Commit()
	return fmt.Errorf("election: campaign %q: %w", c.keyPrefix, err)
}

// sleepCtx waits for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
