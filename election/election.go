package election

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// Campaign blocks until this candidate leads the election on prefix, or ctx
// ends, or the session ends, and returns the Leadership.
//
// prefix names the election; a trailing "/" is optional ("/a/leader" and
// "/a/leader/" are the same election, with keys "/a/leader/<lease hex>").
// value is published in the candidate's key (Observe reports it).
//
// The session is the caller's: the caller creates it (its TTL is the
// failover time after a crash), keeps it for as long as it campaigns or
// leads, and closes it; closing the session ends the leadership. At most one
// Campaign per session and prefix may run at a time (they would share one
// key).
//
// Campaign runs concurrency.Election.Campaign under both ctx and the
// session's context, retries transient etcd errors with backoff while
// keeping its place in the queue, and before returning verifies that its
// key still exists with its create revision and is the first under the
// prefix (etcd #11051). It returns:
//   - the Leadership, whose context the caller watches;
//   - an error wrapping ErrElectionLost if the candidate's key vanished
//     while it waited (its lease expired or was revoked), also wrapping
//     ErrSessionDone if the session ended;
//   - an error wrapping ctx.Err() if ctx ended;
//   - an error wrapping ErrInvalidArgument for a nil session or empty prefix.
//
// On every error the candidate's key is deleted (guarded by its lease, with
// a fresh 5 s timeout) so that no abandoned candidacy stays queued.
// Limitation inherited from concurrency.Election: when ctx ends while the
// candidate waits, etcd's Campaign itself resigns using the client's context;
// if etcd is unreachable at that moment, Campaign returns only once etcd
// answers or the client is closed.
//
// Campaign is safe for concurrent use by different sessions.
func Campaign(ctx context.Context, s *concurrency.Session, prefix, value string) (*Leadership, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: session is nil", ErrInvalidArgument)
	}
	name, err := electionName(prefix)
	if err != nil {
		return nil, err
	}
	c := &campaign{
		cli:       s.Client(),
		session:   s,
		name:      name,
		keyPrefix: name + "/",
		key:       fmt.Sprintf("%s/%x", name, s.Lease()),
		value:     value,
	}
	return c.run(ctx)
}

// electionName validates prefix and returns it without trailing slashes:
// the name concurrency.NewElection expects.
func electionName(prefix string) (string, error) {
	name := strings.TrimRight(prefix, "/")
	if name == "" {
		return "", fmt.Errorf("%w: prefix %q is empty (want e.g. \"/clusterkit/<cluster>/leader/\")", ErrInvalidArgument, prefix)
	}
	return name, nil
}

// campaign is the state of one Campaign call.
type campaign struct {
	cli       *clientv3.Client
	session   *concurrency.Session
	name      string // election name, no trailing slash
	keyPrefix string // name + "/"
	key       string // our key: keyPrefix + lease in hex
	value     string
}

func (c *campaign) run(ctx context.Context) (*Leadership, error) {
	// Campaign under both ctx and the session's context: a candidate whose
	// lease is no longer kept alive must stop waiting.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.session.Ctx(), cancel)
	defer stop()
	cctx = clientv3.WithRequireLeader(cctx)

	e := concurrency.NewElection(c.session, c.name)
	backoff := minBackoff
	for {
		if err := c.ended(ctx); err != nil {
			return nil, c.fail(ctx, err)
		}
		err := e.Campaign(cctx, c.value)
		if err == nil {
			l, verr := c.verify(ctx, cctx, e.Rev())
			if verr == nil {
				return l, nil
			}
			if errors.Is(verr, ErrElectionLost) {
				return nil, c.fail(ctx, verr)
			}
			err = verr
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil, c.fail(ctx, fmt.Errorf("%w: lease %x of the session not found", ErrElectionLost, int64(c.session.Lease())))
		}
		if endErr := c.ended(ctx); endErr != nil {
			return nil, c.fail(ctx, endErr)
		}
		// Transient (lost etcd leader, watch broken, timeout): keep our key,
		// hence our place in the queue, and campaign again.
		t := time.NewTimer(backoff)
		select {
		case <-cctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// ended returns the reason to stop campaigning, or nil.
func (c *campaign) ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.session.Done():
		return fmt.Errorf("%w: %w", ErrElectionLost, ErrSessionDone)
	default:
		return nil
	}
}

// fail deletes our key if it is still there (best effort, bounded) and
// returns err annotated with the operation.
func (c *campaign) fail(ctx context.Context, err error) error {
	// Not under ctx (it may be what ended), but under the client's own
	// context, so that closing the client ends this clean-up at once.
	dctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(c.cli.Ctx()), opTimeout)
	defer cancel()
	// Guarded by the lease: the key is ours only if it carries our lease.
	_, _ = c.cli.Txn(dctx).
		If(clientv3.Compare(clientv3.LeaseValue(c.key), "=", c.session.Lease())).
		Then(clientv3.OpDelete(c.key)).
		Commit()
	return fmt.Errorf("election: campaign %q: %w", c.keyPrefix, err)
}

// verify checks, in one Txn, that our key exists with create revision rev
// and is the first key of the election, and if so returns the Leadership.
// It returns an error wrapping ErrElectionLost if our key is gone or
// replaced (etcd #11051), and another error for a transient failure or if a
// key older than ours still exists.
func (c *campaign) verify(ctx, cctx context.Context, rev int64) (*Leadership, error) {
	vctx, cancel := context.WithTimeout(cctx, opTimeout)
	defer cancel()
	resp, err := c.cli.Txn(vctx).
		If(clientv3.Compare(clientv3.CreateRevision(c.key), "=", rev)).
		Then(clientv3.OpGet(c.keyPrefix, clientv3.WithFirstCreate()...)).
		Else(clientv3.OpGet(c.key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("verify key %s: %w", c.key, err)
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if !resp.Succeeded {
		if len(kvs) == 0 {
			return nil, fmt.Errorf("%w: key %s (create revision %d) is gone after Campaign returned (lease expired or revoked while waiting, etcd #11051)", ErrElectionLost, c.key, rev)
		}
		return nil, fmt.Errorf("%w: key %s has create revision %d, want %d", ErrElectionLost, c.key, kvs[0].CreateRevision, rev)
	}
	if len(kvs) == 0 || string(kvs[0].Key) != c.key {
		return nil, fmt.Errorf("verify key %s: an older candidate still exists", c.key)
	}
	return newLeadership(ctx, c.cli, c.session, c.key, rev, resp.Header.Revision+1), nil
}

// Leadership is one term of leadership won by Campaign.
//
// Its context (Context, Done) is cancelled when the term ends, with a cause
// (context.Cause) wrapping:
//   - ErrElectionLost: the leader key was deleted or replaced (lease expired
//     or revoked, key deleted by an operator), or a fenced Txn found it
//     gone; also ErrSessionDone if the session ended (its Done closed, which
//     does not mean that etcd revoked the lease);
//   - ErrResigned: Resign was called;
//   - ErrClosed: Close was called.
//
// A Leadership owns one goroutine that watches the leader key (with
// WithRequireLeader, re-reading the key after compaction or a broken watch)
// and the session. Resign or Close stop it and wait for it; one of them must
// be called, even after the context was cancelled.
//
// Its methods are safe for concurrent use. The zero value is not usable.
type Leadership struct {
	cli     *clientv3.Client
	session *concurrency.Session
	key     string
	token   int64

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the monitor goroutine has exited

	resignMu sync.Mutex
	resigned bool // the key was deleted (or was already not ours)

	resyncs atomic.Int64 // times the monitor re-read the key; for tests
}

// newLeadership starts the monitor watching key from revision watchRev.
func newLeadership(ctx context.Context, cli *clientv3.Client, s *concurrency.Session, key string, token, watchRev int64) *Leadership {
	l := &Leadership{
		cli:     cli,
		session: s,
		key:     key,
		token:   token,
		done:    make(chan struct{}),
	}
	// The term keeps ctx's values but not its cancellation: ctx bounds the
	// campaign only.
	l.ctx, l.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	go l.monitor(watchRev)
	return l
}

// Context returns a context that is cancelled when this leadership ends; see
// Leadership for the causes. It carries the values of the ctx given to
// Campaign, not its cancellation.
func (l *Leadership) Context() context.Context { return l.ctx }

// Done is Context().Done().
func (l *Leadership) Done() <-chan struct{} { return l.ctx.Done() }

// Token returns the fencing token: the leader key's create revision. Tokens
// of later terms on the same etcd cluster are larger.
func (l *Leadership) Token() int64 { return l.token }

// Key returns the leader key ("<prefix>/<lease hex>").
func (l *Leadership) Key() string { return l.key }

// Cmp returns Compare(CreateRevision(Key()), "=", Token()), to put in the If
// of the caller's own Txn: the Txn succeeds only while this term's key
// exists. It stays valid (and false) after the term ends.
func (l *Leadership) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.token)
}

// Txn runs a Txn that applies ops if this leadership still holds (Cmp) and
// every cond holds, bounded by ctx and a 5 s timeout.
//
// It returns an error wrapping ErrNotLeader, and cancels the leadership's
// context, if the leader key is gone or replaced; it also returns
// ErrNotLeader without asking etcd once the leadership's context is
// cancelled (so a Closed leadership cannot write). If the leadership holds
// but a cond fails, it returns the response with Succeeded == false and a
// nil error; its Responses then hold the Get of Key() used to tell the two
// apart, not caller operations.
func (l *Leadership) Txn(ctx context.Context, conds []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	if l.ctx.Err() != nil {
		return nil, fmt.Errorf("election: fenced txn on %s: %w (%w)", l.key, ErrNotLeader, context.Cause(l.ctx))
	}
	tctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), opTimeout)
	defer cancel()
	cmps := append([]clientv3.Cmp{l.Cmp()}, conds...)
	resp, err := l.cli.Txn(tctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(l.key)).Commit()
	if err != nil {
		return nil, fmt.Errorf("election: fenced txn on %s: %w", l.key, err)
	}
	if resp.Succeeded {
		return resp, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 0 || kvs[0].CreateRevision != l.token {
		l.cancel(fmt.Errorf("%w: leader key %s gone at revision %d (seen by a fenced txn)", ErrElectionLost, l.key, resp.Header.Revision))
		return nil, fmt.Errorf("election: fenced txn on %s: %w", l.key, ErrNotLeader)
	}
	return resp, nil
}

// Resign ends this leadership and deletes the leader key (if it is still
// this term's), so that the next candidate leads at once. The context is
// cancelled (cause ErrResigned, unless it had already ended) and the
// monitor goroutine has exited before the key is deleted, so the caller's
// leader work sees the end of the term before any successor starts.
//
// The delete is bounded by ctx and 5 s; if ctx is already done, a fresh 5 s
// context is used. Resign is idempotent: once the delete succeeded (or
// found the key no longer this term's) later calls return nil; after an
// error, a later call retries the delete. It does not close the session.
//
// Handover measured here (embedded etcd, loopback): the successor's
// Campaign returns 4-6 ms after Resign starts. A successor that queued less
// than ~100 ms before may take up to 100 ms more: concurrency.Election
// watches from a past revision, and etcd syncs such watchers every 100 ms.
func (l *Leadership) Resign(ctx context.Context) error {
	l.resignMu.Lock()
	defer l.resignMu.Unlock()
	if l.resigned {
		return nil
	}
	l.cancel(ErrResigned)
	<-l.done
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), opTimeout)
	defer cancel()
	if _, err := l.cli.Txn(rctx).If(l.Cmp()).Then(clientv3.OpDelete(l.key)).Commit(); err != nil {
		return fmt.Errorf("election: resign %s: %w", l.key, err)
	}
	l.resigned = true
	return nil
}

// Close ends this leadership locally without deleting the leader key: the
// context is cancelled (cause ErrClosed, unless it had already ended) and
// the monitor goroutine has exited when Close returns. The key stays until
// the session's lease ends, so no other candidate leads before then; use it
// when the session is gone or about to be closed (which revokes the lease),
// and Resign to hand over. A new Campaign with the same session finds the
// key and leads again at once, with the same token. Close is idempotent and
// makes no etcd request.
func (l *Leadership) Close() {
	l.cancel(ErrClosed)
	<-l.done
}

// monitor cancels the leadership when the key is deleted or replaced or the
// session ends, until the context is cancelled by someone else.
func (l *Leadership) monitor(rev int64) {
	defer close(l.done)
	backoff := minBackoff
	for {
		over, healthy := l.watchFrom(rev)
		if over {
			return
		}
		// The watch broke (compaction, etcd leader lost, client closing):
		// re-read the key and watch again from that read. Back off first if
		// the watch failed before delivering anything, so that a watch that
		// keeps failing does not hammer etcd.
		if healthy {
			backoff = minBackoff
		} else {
			if !l.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
		l.resyncs.Add(1)
		var ok bool
		if rev, ok = l.reread(); !ok {
			return
		}
	}
}

// watchFrom watches the key from rev. It returns over == true when the
// leadership is over, and otherwise (the watch broke and must be
// re-established) whether the watch delivered any response before breaking.
func (l *Leadership) watchFrom(rev int64) (over, healthy bool) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(l.ctx))
	defer cancel()
	// clientv3's Watch blocks until etcd creates the watch: if the session
	// ends meanwhile (etcd unreachable), end the leadership without waiting.
	stop := context.AfterFunc(l.session.Ctx(), func() {
		l.cancel(fmt.Errorf("%w: %w", ErrElectionLost, ErrSessionDone))
	})
	defer stop()
	wch := l.cli.Watch(wctx, l.key, clientv3.WithRev(rev))
	for {
		select {
		case <-l.ctx.Done():
			return true, false
		case <-l.session.Done():
			l.cancel(fmt.Errorf("%w: %w", ErrElectionLost, ErrSessionDone))
			return true, false
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return false, healthy
			}
			healthy = true
			for _, ev := range wr.Events {
				switch {
				case ev.Type == mvccpb.DELETE:
					l.cancel(fmt.Errorf("%w: leader key %s deleted at revision %d", ErrElectionLost, l.key, ev.Kv.ModRevision))
					return true, false
				case ev.Kv.CreateRevision != l.token:
					l.cancel(fmt.Errorf("%w: leader key %s re-created at revision %d", ErrElectionLost, l.key, ev.Kv.CreateRevision))
					return true, false
				}
			}
		}
	}
}

// reread gets the key until it succeeds, and returns the revision to watch
// from, or false if the leadership is over.
func (l *Leadership) reread() (int64, bool) {
	backoff := minBackoff
	for {
		gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(l.ctx), opTimeout)
		resp, err := l.cli.Get(gctx, l.key)
		cancel()
		if err == nil {
			if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.token {
				l.cancel(fmt.Errorf("%w: leader key %s gone at revision %d (seen on re-read)", ErrElectionLost, l.key, resp.Header.Revision))
				return 0, false
			}
			return resp.Header.Revision + 1, true
		}
		if !l.sleep(backoff) {
			return 0, false
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// sleep waits for d and reports whether the leadership is still on; it
// cancels the leadership if the session ends meanwhile.
func (l *Leadership) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.ctx.Done():
		return false
	case <-l.session.Done():
		l.cancel(fmt.Errorf("%w: %w", ErrElectionLost, ErrSessionDone))
		return false
	case <-t.C:
		return true
	}
}
