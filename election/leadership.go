package election

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leadership is one term of leadership won by CampaignOnLease or Campaign.
//
// Its context (Context, Done) is cancelled when the term ends, with a cause
// (context.Cause) wrapping:
//   - ErrElectionLost: the leader key was deleted or replaced (lease expired
//     or revoked, key deleted by an operator), or a fenced Txn found it
//     gone; also ErrLeaseDone (= ErrSessionDone) if the lease's keeper
//     stopped keeping it alive (the WithLeaseDone channel or the session's
//     Done closed, which does not mean that etcd revoked the lease);
//   - ErrResigned: Resign was called;
//   - ErrClosed: Close was called.
//
// A Leadership owns one goroutine that watches the leader key (with
// WithRequireLeader, re-reading the key after compaction or a broken watch)
// and, if one was given, the lease's done channel. Resign or Close stop it
// and wait for it; one of them must be called, even after the context was
// cancelled.
//
// Its methods are safe for concurrent use. The zero value is not usable.
type Leadership struct {
	cli       *clientv3.Client
	leaseDone <-chan struct{} // nil: not given
	key       string
	token     int64

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the monitor goroutine has exited

	resignMu sync.Mutex
	resigned bool // the key was deleted (or was already not ours)

	resyncs atomic.Int64 // times the monitor re-read the key; for tests
}

// newLeadership starts the monitor watching key from revision watchRev.
func newLeadership(ctx context.Context, cli *clientv3.Client, leaseDone <-chan struct{}, key string, token, watchRev int64) *Leadership {
	l := &Leadership{
		cli:       cli,
		leaseDone: leaseDone,
		key:       key,
		token:     token,
		done:      make(chan struct{}),
	}
	// The term keeps ctx's values but not its cancellation: ctx bounds the
	// campaign only.
	l.ctx, l.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	go l.monitor(watchRev)
	return l
}

// Context returns a context that is cancelled when this leadership ends; see
// Leadership for the causes. It carries the values of the ctx given to
// the campaign, not its cancellation.
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
// error, a later call retries the delete. It does not revoke the lease.
//
// Handover measured here (embedded etcd, loopback, -race): the successor's
// campaign returns 3-7 ms after Resign starts (p50 2.5 ms for a successor
// that queued just before; concurrency.Election's Campaign then takes up to
// 100 ms more, as it watches from a past revision, which etcd serves at its
// next sync of unsynced watchers).
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
// the lease ends, so no other candidate leads before then; use it when the
// lease is gone or about to be revoked, and Resign to hand over. A new
// campaign on the same lease finds the key and leads again at once, with
// the same token. Close is idempotent and makes no etcd request.
func (l *Leadership) Close() { l.end(ErrClosed) }

// end cancels the term with cause (unless it has ended already; a nil
// cause only waits) and waits for the monitor to exit.
func (l *Leadership) end(cause error) {
	if cause != nil {
		l.cancel(cause)
	}
	<-l.done
}

// monitor cancels the leadership when the key is deleted or replaced or the
// lease is done, until the context is cancelled by someone else. It returns
// only once the context is cancelled.
func (l *Leadership) monitor(rev int64) {
	defer close(l.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		select {
		case <-l.leaseDone:
			l.cancel(fmt.Errorf("%w: %w", ErrElectionLost, ErrLeaseDone))
		case <-l.ctx.Done():
		}
	})
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
			if !sleepCtx(l.ctx, backoff) {
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
	wch := l.cli.Watch(wctx, l.key, clientv3.WithRev(rev))
	for {
		select {
		case <-l.ctx.Done():
			return true, false
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return l.ctx.Err() != nil, healthy
			}
			healthy = true
			for _, ev := range wr.Events {
				switch {
				case ev.Type == mvccpb.DELETE:
					l.cancel(fmt.Errorf("%w: key %s deleted at revision %d", ErrElectionLost, l.key, ev.Kv.ModRevision))
					return true, false
				case ev.Kv.CreateRevision != l.token:
					l.cancel(fmt.Errorf("%w: key %s re-created at revision %d", ErrElectionLost, l.key, ev.Kv.CreateRevision))
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
				l.cancel(fmt.Errorf("%w: key %s gone at revision %d (seen on re-read)", ErrElectionLost, l.key, resp.Header.Revision))
				return 0, false
			}
			return resp.Header.Revision + 1, true
		}
		if !sleepCtx(l.ctx, backoff) {
			return 0, false
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
