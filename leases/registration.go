package leases

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// createWait bounds how long a stopping watch waits for etcd to confirm its
// creation (see Registration.follow).
const createWait = time.Second

// errStopped is the cancel cause of a Registration ended by its owner.
var errStopped = errors.New("leases: stopped by its owner")

// Registration is a key bound to a lease that is kept alive by a goroutine
// the Registration owns. Create it with Register; the zero value is not
// usable. Its methods are safe for concurrent use.
//
// The Registration ends when its owner calls Close or Abandon, or when it
// loses the key; Done is then closed, Err says why, and the goroutines it
// started have exited. The etcd client stays the caller's to close, after
// Close or Abandon.
type Registration struct {
	cli *clientv3.Client
	key string
	id  clientv3.LeaseID
	ttl time.Duration
	o   options
	log *zap.Logger

	ctx    context.Context // the run's; cancelled with the cause when it ends
	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error // why it ended; written before done is closed

	mu        sync.Mutex
	renewedAt time.Time // send time of the grant or of the last acknowledged keep-alive
	released  bool      // the lease is revoked or known to be gone
	presumed  bool      // lost because no keep-alive succeeded within the TTL
	// modRev is the key's mod revision as this Registration last wrote or
	// read it: Update writes only over it (see Update).
	modRev int64

	closeOnce sync.Once
	closeErr  error
}

// start starts the Registration's goroutine for the key written at rev.
func start(rg *registrar, rev int64) *Registration {
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &Registration{
		cli:       rg.cli,
		key:       rg.key,
		id:        rg.id,
		ttl:       rg.ttl,
		o:         rg.o,
		log:       rg.log.With(zap.String("lease", leaseHex(rg.id))),
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		renewedAt: rg.renewedAt,
		modRev:    rev,
	}
	go r.run(ctx, rev)
	return r
}

// Key returns the registered key.
func (r *Registration) Key() string { return r.key }

// TTL returns the lease's TTL.
func (r *Registration) TTL() time.Duration { return r.ttl }

// LeaseID returns the lease the key is bound to. It identifies this
// incarnation: a process may persist it and, after a restart, pass it to
// WithPreviousLease to take the key over at once. Callers may bind other
// keys to it so that they live and die with the registration.
func (r *Registration) LeaseID() clientv3.LeaseID { return r.id }

// IsHolder returns a comparison that holds while the key is bound to this
// Registration's lease, for the caller's own Txn (a fenced write).
func (r *Registration) IsHolder() clientv3.Cmp {
	return clientv3.Compare(clientv3.LeaseValue(r.key), "=", r.id)
}

// LastRenewal returns the send time of the last keep-alive etcd
// acknowledged (or of the grant). etcd expires the lease no earlier than
// LastRenewal + TTL, and Done closes at that time at the latest if no later
// keep-alive succeeds.
func (r *Registration) LastRenewal() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.renewedAt
}

// Done returns a channel that is closed when the Registration ends: the
// lease was lost (expired, revoked elsewhere, or not renewed within its TTL,
// for example because etcd is unreachable), the key was deleted or rebound
// by someone else, or the owner called Close or Abandon. When it is closed
// the Registration's goroutines have exited. After a loss the lease is no
// longer kept alive; if the key was deleted or replaced while the lease was
// still alive, the lease is revoked (best effort) before Done closes, so
// keys bound to it go too.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Err returns nil while Done is open, and afterwards why it closed: an error
// wrapping ErrLeaseLost, ErrKeyDeleted or ErrKeyReplaced, or nil if the
// owner ended the Registration with Close or Abandon before any loss. The
// first cause wins.
func (r *Registration) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Update rewrites the key's value on the same lease. It writes only while
// the key is still bound to this Registration's lease (one Txn), so it never
// recreates a key after a loss; if the key is gone or rebound, Update ends
// the Registration and returns the cause (ErrLeaseLost, ErrKeyDeleted or
// ErrKeyReplaced). It also writes only over the value this Registration
// last wrote or read: etcd under load may still apply an Update whose
// request timed out, after a newer one, which must then change nothing
// (the key, still ours, is read and written again). After the Registration
// has ended it returns its Err, or ErrClosed. The request is bounded by
// ctx and the request timeout.
func (r *Registration) Update(ctx context.Context, value []byte) error {
	if r.ctx.Err() != nil {
		return r.endCause()
	}
	cctx, cancel := context.WithTimeout(ctx, r.o.requestTimeout)
	defer cancel()
	for range 3 {
		r.mu.Lock()
		rev := r.modRev
		r.mu.Unlock()
		resp, err := r.cli.Txn(cctx).
			If(r.IsHolder(), clientv3.Compare(clientv3.ModRevision(r.key), "=", rev)).
			Then(clientv3.OpPut(r.key, string(value), clientv3.WithLease(r.id))).
			Else(clientv3.OpGet(r.key)).
			Commit()
		if err != nil {
			return fmt.Errorf("leases: update %q: %w", r.key, err)
		}
		if resp.Succeeded {
			r.sawModRev(resp.Header.Revision)
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 || clientv3.LeaseID(kvs[0].Lease) != r.id {
			r.cancel(r.lossCause(cctx, kvs))
			return r.endCause()
		}
		r.sawModRev(kvs[0].ModRevision) // still ours, written since: by an Update of ours
	}
	return fmt.Errorf("leases: update %q: the key kept changing under this update", r.key)
}

// sawModRev records a mod revision of the key that this Registration wrote
// or read; an older one (a concurrent Update's) changes nothing.
func (r *Registration) sawModRev(rev int64) {
	r.mu.Lock()
	r.modRev = max(r.modRev, rev)
	r.mu.Unlock()
}

// endCause returns why the (ended) run ended, or ErrClosed if its owner
// ended it. The first cause wins, so Update and the run goroutines agree.
func (r *Registration) endCause() error {
	cause := context.Cause(r.ctx)
	if errors.Is(cause, errStopped) {
		return fmt.Errorf("%w: %q", ErrClosed, r.key)
	}
	return cause
}

// Close ends the Registration and revokes its lease, which deletes the key
// (and every other key bound to the lease) at once: a graceful leave. It
// waits for the Registration's goroutines to exit. If ctx is already done,
// the revoke uses a fresh context; it is bounded by the request timeout
// either way. If the lease is known to be gone, Close does not call etcd.
// After a loss Close returns nil: if the lease was only presumed expired
// (no keep-alive succeeded within the TTL, etcd unreachable), Close still
// tries to revoke it and ignores a failure. Otherwise it returns the revoke
// error; the key then expires within a TTL. Close is idempotent: later
// calls return the first call's result. It may follow Abandon.
func (r *Registration) Close(ctx context.Context) error {
	r.stop()
	r.closeOnce.Do(func() {
		if r.isReleased() {
			return
		}
		if err := revokeLease(ctx, r.cli, r.id, r.o.requestTimeout); err != nil {
			if r.Err() != nil {
				r.log.Debug("could not revoke the lost lease", zap.Error(err))
				return
			}
			r.closeErr = fmt.Errorf("leases: close %q: %w (the key expires after %s)", r.key, err, r.ttl)
			return
		}
		r.setReleased()
	})
	return r.closeErr
}

// Abandon stops keeping the lease alive without revoking it, as a crash
// would: the key stays until etcd expires the lease, TTL after LastRenewal.
// It waits for the Registration's goroutines to exit and is idempotent.
// Close may still be called afterwards to revoke the lease.
func (r *Registration) Abandon() { r.stop() }

func (r *Registration) stop() {
	r.cancel(errStopped)
	<-r.done
}

func (r *Registration) isReleased() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.released
}

func (r *Registration) setReleased() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = true
}

func (r *Registration) setRenewed(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.renewedAt = t
}

// run owns the keep-alive loop (on this goroutine) and the watch goroutine.
// Either ends the Registration by cancelling ctx with the cause.
func (r *Registration) run(ctx context.Context, rev int64) {
	defer close(r.done)
	var wg sync.WaitGroup
	wg.Go(func() { r.watch(ctx, rev) })
	r.keepAlive(ctx)
	wg.Wait()
	cause := context.Cause(ctx)
	if errors.Is(cause, errStopped) {
		return
	}
	r.err = cause
	if errors.Is(cause, ErrLeaseLost) {
		// Known gone, unless only presumed expired (etcd unreachable; it
		// may have received a keep-alive whose answer we did not get).
		r.mu.Lock()
		r.released = !r.presumed
		r.mu.Unlock()
		return
	}
	// The key was deleted or rebound while our lease may still live.
	if err := revokeLease(context.Background(), r.cli, r.id, r.o.requestTimeout); err != nil {
		r.log.Warn("could not revoke the lease after losing the key; it expires after its TTL", zap.Error(err))
		return
	}
	r.setReleased()
}

// keepAlive renews the lease every TTL/3 (from the send time of the last
// acknowledged keep-alive) through a renewer, which hedges each renewal
// across etcd endpoints (see renewer). It ends the Registration with
// ErrLeaseLost when etcd says the lease is gone, or when no keep-alive was
// acknowledged before the lease's estimated expiry, LastRenewal + TTL.
func (r *Registration) keepAlive(ctx context.Context) {
	rn := newRenewer(r.cli, r.o.dial, r.id, r.ttl, r.o.requestTimeout)
	defer rn.close()
	renewedAt := r.LastRenewal()
	interval := r.ttl / 3
	timer := time.NewTimer(time.Until(renewedAt.Add(interval)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		sentAt, err := rn.renew(ctx, renewedAt.Add(r.ttl))
		switch {
		case err == nil:
			renewedAt = sentAt
			r.setRenewed(sentAt)
			timer.Reset(time.Until(sentAt.Add(interval)))
		case ctx.Err() != nil:
			return
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			r.cancel(fmt.Errorf("%w: %q: lease %x expired or was revoked", ErrLeaseLost, r.key, r.id))
			return
		default:
			r.mu.Lock()
			r.presumed = true
			r.mu.Unlock()
			r.cancel(fmt.Errorf("%w: %q: lease %x not renewed within its TTL of %s (last error: %v)", ErrLeaseLost, r.key, r.id, r.ttl, err))
			return
		}
	}
}

// watch ends the Registration when the key is deleted or rebound. It
// watches from the revision after rev; when a watch ends (no etcd leader,
// compaction) it re-reads the key and watches again from there.
func (r *Registration) watch(ctx context.Context, rev int64) {
	backoff := 50 * time.Millisecond
	for {
		// The watch has its own context, cancelled by follow's caller, so
		// that follow can let a pending creation finish first (see follow).
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(context.WithoutCancel(ctx)))
		// clientv3's Watch itself blocks until etcd creates the watch; if
		// ctx ends meanwhile (etcd unreachable, the lease lost), give the
		// creation follow's grace, then cancel it, so Done still closes.
		stop := context.AfterFunc(ctx, func() {
			t := time.NewTimer(createWait)
			defer t.Stop()
			select {
			case <-t.C:
				wcancel()
			case <-wctx.Done():
			}
		})
		cause, werr := r.follow(ctx, r.cli.Watch(wctx, r.key, clientv3.WithRev(rev+1), clientv3.WithCreatedNotify()), &rev)
		stop()
		wcancel()
		switch {
		case ctx.Err() != nil:
			return
		case cause != nil:
			r.cancel(cause)
			return
		}
		r.log.Debug("watch ended; re-reading the key", zap.Int64("revision", rev), zap.Error(werr))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		cctx, cancel := context.WithTimeout(ctx, r.o.requestTimeout)
		resp, err := r.cli.Get(cctx, r.key)
		cancel()
		if err != nil {
			continue // watch again from rev; the keep-alive notices an unreachable etcd
		}
		if len(resp.Kvs) == 0 || clientv3.LeaseID(resp.Kvs[0].Lease) != r.id {
			r.cancel(r.lossCause(ctx, resp.Kvs))
			return
		}
		rev, backoff = resp.Header.Revision, 50*time.Millisecond
	}
}

// follow reads one watch until it ends or ctx is done. It returns the loss
// cause if the key was deleted or rebound, else the watch's error (nil if
// the channel just closed or ctx ended). *rev tracks the last event's
// revision.
//
// A clientv3 watch cancelled before etcd confirmed its creation leaves the
// client's gRPC watch stream open until the client closes (which also makes
// an embedded etcd's shutdown wait for its 5 s request timeout). So when ctx
// ends before the creation was confirmed, follow waits for the confirmation,
// for at most createWait, before returning.
func (r *Registration) follow(ctx context.Context, wch clientv3.WatchChan, rev *int64) (cause, werr error) {
	created := false
	for {
		var (
			wresp clientv3.WatchResponse
			ok    bool
		)
		select {
		case wresp, ok = <-wch:
		case <-ctx.Done():
			if !created {
				select {
				case <-wch:
				case <-time.After(createWait):
				}
			}
			return nil, nil
		}
		if !ok {
			return nil, nil
		}
		if err := wresp.Err(); err != nil {
			return nil, err
		}
		if wresp.Created {
			created = true
		}
		for _, ev := range wresp.Events {
			*rev = max(*rev, ev.Kv.ModRevision)
			switch {
			case ev.Type == mvccpb.DELETE:
				return r.lossCause(ctx, nil), nil
			case clientv3.LeaseID(ev.Kv.Lease) != r.id:
				return r.lossCause(ctx, []*mvccpb.KeyValue{ev.Kv}), nil
			}
		}
	}
}

// lossCause explains why the key is no longer bound to our lease, given what
// is there now (kvs empty: no key).
func (r *Registration) lossCause(ctx context.Context, kvs []*mvccpb.KeyValue) error {
	if len(kvs) > 0 && clientv3.LeaseID(kvs[0].Lease) != r.id {
		return fmt.Errorf("%w: %q is now bound to lease %x (revision %d)", ErrKeyReplaced, r.key, kvs[0].Lease, kvs[0].ModRevision)
	}
	// The key is gone: with our lease (expired or revoked), or on its own.
	// etcd removes an expired lease before its keys' deletion is visible.
	cctx, cancel := context.WithTimeout(ctx, r.o.requestTimeout)
	defer cancel()
	resp, err := r.cli.TimeToLive(cctx, r.id)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL < 0):
		return fmt.Errorf("%w: %q: lease %x expired or was revoked", ErrLeaseLost, r.key, r.id)
	case err != nil:
		return fmt.Errorf("%w: %q deleted (the state of lease %x is unknown: %v)", ErrKeyDeleted, r.key, r.id, err)
	default:
		return fmt.Errorf("%w: %q deleted while lease %x was alive", ErrKeyDeleted, r.key, r.id)
	}
}
