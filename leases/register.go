package leases

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// waitMargin is added to an old lease's remaining TTL (reported in whole
// seconds, rounded down) when Register waits for it to expire: one second
// for the rounding and one for etcd's expiry check (every 500 ms) and the
// revoke that follows it.
const waitMargin = 2 * time.Second

// Register creates key with value, bound to a new lease of the given TTL,
// and keeps the lease alive until Close, Abandon or the loss of the lease
// (see Registration.Done).
//
// The TTL must be a whole number of seconds, at least MinTTL (1 s) and at
// least the etcd server's minimum lease TTL (1.5 × its election timeout,
// rounded up to seconds; 2 s with etcd's defaults). A TTL that breaks these
// rules fails with ErrInvalidTTL; Register detects the server's minimum by
// comparing the TTL etcd granted with the one requested, and revokes the
// granted lease before returning.
//
// The key is created only if it does not exist (one Txn comparing its
// create revision with 0); an existing key is never overwritten, except by a
// takeover proven with WithPreviousLease. If the key is bound to another
// lease, Register waits for that lease to expire, for at most its remaining
// TTL plus two seconds and never past ctx, and then creates the key. If the
// key exists without a lease, or its lease is renewed while Register waits,
// or is still there when the wait ends, Register fails with ErrKeyInUse.
//
// While it waits, Register holds no lease of its own (it grants one before
// each attempt to create the key) and rides out etcd errors and leader
// changes: only the deadline, a renewal seen within one etcd term, or ctx
// end the wait. A renewal is visible only when the holder's remaining TTL
// crosses a whole second between keep-alives, in practice for TTLs of 4 s
// or more; shorter ones are refused at the deadline.
//
// ctx bounds the whole call, including the wait; each etcd request is also
// bounded by the request timeout. On any error nothing is left in etcd: the
// lease granted by this call is revoked (with a fresh, bounded context if
// ctx is done). The returned Registration does not depend on ctx; the
// caller closes it (Close or Abandon) before closing cli.
func Register(ctx context.Context, cli *clientv3.Client, key string, value []byte, ttl time.Duration, opts ...Option) (*Registration, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	switch {
	case cli == nil:
		return nil, fmt.Errorf("%w: register %q: nil etcd client", ErrInvalidArgument, key)
	case key == "":
		return nil, fmt.Errorf("%w: register: empty key", ErrInvalidArgument)
	}
	if o.requestTimeout <= 0 {
		return nil, fmt.Errorf("%w: register %q: request timeout %s must be positive", ErrInvalidArgument, key, o.requestTimeout)
	}
	if err := validateTTL(ttl); err != nil {
		return nil, fmt.Errorf("%w: register %q: %v", ErrInvalidTTL, key, err)
	}
	rg := &registrar{
		cli:   cli,
		key:   key,
		value: string(value),
		ttl:   ttl,
		o:     o,
		log:   o.logger.With(zap.String("key", key)),
	}
	rev, err := rg.acquire(ctx)
	if err != nil {
		if rg.id == clientv3.NoLease {
			return nil, err
		}
		if rerr := rg.revokeOwn(ctx); rerr != nil {
			err = fmt.Errorf("%w (and the new lease %x could not be revoked, it will expire after %s: %v)", err, rg.id, ttl, rerr)
		}
		return nil, err
	}
	// Keep the new lease alive before the (up to a request timeout long)
	// revocation of the previous one.
	r := start(rg, rev)
	rg.revokePrevious(ctx)
	return r, nil
}

// validateTTL checks the rules that do not need the server.
func validateTTL(ttl time.Duration) error {
	switch {
	case ttl < MinTTL:
		return fmt.Errorf("ttl %s is below the minimum of %s", ttl, MinTTL)
	case ttl%time.Second != 0:
		return fmt.Errorf("ttl %s is not a whole number of seconds", ttl)
	}
	return nil
}

// registrar holds the state of one Register call.
type registrar struct {
	cli   *clientv3.Client
	key   string
	value string
	ttl   time.Duration
	o     options
	log   *zap.Logger

	id        clientv3.LeaseID // our new lease; NoLease before the grant and while waiting
	renewedAt time.Time        // send time of its grant
}

func (rg *registrar) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, rg.o.requestTimeout)
}

// grant grants our lease and checks that etcd did not raise its TTL.
func (rg *registrar) grant(ctx context.Context) error {
	secs := int64(rg.ttl / time.Second)
	cctx, cancel := rg.reqCtx(ctx)
	defer cancel()
	sent := time.Now()
	resp, err := rg.cli.Grant(cctx, secs)
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
			return fmt.Errorf("%w: register %q: ttl %s is above etcd's maximum lease TTL: %v", ErrInvalidTTL, rg.key, rg.ttl, err)
		}
		return fmt.Errorf("leases: register %q: grant lease: %w", rg.key, err)
	}
	if resp.TTL != secs {
		rg.id = resp.ID
		err := fmt.Errorf("%w: register %q: ttl %s is below the etcd server's minimum lease TTL of %ds (1.5 × its election timeout); etcd would raise it silently", ErrInvalidTTL, rg.key, rg.ttl, resp.TTL)
		if rerr := rg.revokeOwn(ctx); rerr != nil {
			err = fmt.Errorf("%w (and the granted lease %x could not be revoked: %v)", err, rg.id, rerr)
		}
		rg.id = clientv3.NoLease
		return err
	}
	rg.id, rg.renewedAt = resp.ID, sent
	return nil
}

// revokeOwn revokes our lease, with a fresh bounded context if ctx is done.
func (rg *registrar) revokeOwn(ctx context.Context) error {
	return revokeLease(ctx, rg.cli, rg.id, rg.o.requestTimeout)
}

// revokePrevious revokes the lease named by WithPreviousLease, if any, so
// that nothing bound to the previous incarnation outlives it. Failures are
// logged only: that lease expires on its own.
func (rg *registrar) revokePrevious(ctx context.Context) {
	prev := rg.o.prevLease
	if prev == clientv3.NoLease || prev == rg.id {
		return
	}
	if err := revokeLease(ctx, rg.cli, prev, rg.o.requestTimeout); err != nil {
		rg.log.Warn("could not revoke the previous lease; it will expire on its own",
			zap.String("previous_lease", leaseHex(prev)), zap.Error(err))
	}
}

// revokeLease revokes id; a lease that no longer exists is not an error. It
// uses a fresh context if ctx is done, and bounds the call by timeout.
func revokeLease(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID, timeout time.Duration) error {
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Revoke(cctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoke lease %x: %w", id, err)
	}
	return nil
}

// acquire creates the key or takes it over, waiting for a previous holder's
// lease to expire if needed. It returns the revision of the write.
func (rg *registrar) acquire(ctx context.Context) (int64, error) {
	for {
		if rg.id == clientv3.NoLease {
			if err := rg.grant(ctx); err != nil {
				return 0, err
			}
		}
		cctx, cancel := rg.reqCtx(ctx)
		resp, err := rg.cli.Txn(cctx).
			If(clientv3.Compare(clientv3.CreateRevision(rg.key), "=", 0)).
			Then(clientv3.OpPut(rg.key, rg.value, clientv3.WithLease(rg.id))).
			Else(clientv3.OpGet(rg.key)).
			Commit()
		cancel()
		if err != nil {
			return 0, fmt.Errorf("leases: register %q: create key: %w", rg.key, err)
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			continue // cannot happen (the Else ran because the key existed); retry
		}
		kv := kvs[0]
		holder := clientv3.LeaseID(kv.Lease)
		switch {
		case holder == clientv3.NoLease:
			return 0, fmt.Errorf("%w: register %q: the key exists without a lease (mod revision %d)", ErrKeyInUse, rg.key, kv.ModRevision)
		case holder == rg.id:
			return kv.ModRevision, nil // ours already; cannot normally happen
		case holder == rg.o.prevLease:
			rev, ok, err := rg.takeOver(ctx, holder)
			if err != nil || ok {
				return rev, err
			}
			// The key changed under us: look again.
		default:
			// Hold no lease while waiting: it could expire during a long
			// wait or an etcd outage. Grant a new one afterwards.
			if err := rg.revokeOwn(ctx); err != nil {
				rg.log.Debug("could not revoke the new lease before waiting; it expires on its own", zap.Error(err))
			}
			rg.id = clientv3.NoLease
			if err := rg.waitRelease(ctx, holder); err != nil {
				return 0, err
			}
		}
	}
}

// takeOver rebinds the key from the proven previous lease to ours in one Txn.
func (rg *registrar) takeOver(ctx context.Context, prev clientv3.LeaseID) (rev int64, ok bool, err error) {
	cctx, cancel := rg.reqCtx(ctx)
	defer cancel()
	resp, err := rg.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.LeaseValue(rg.key), "=", prev)).
		Then(clientv3.OpPut(rg.key, rg.value, clientv3.WithLease(rg.id))).
		Commit()
	if err != nil {
		return 0, false, fmt.Errorf("leases: register %q: take over from lease %x: %w", rg.key, prev, err)
	}
	if !resp.Succeeded {
		return 0, false, nil
	}
	rg.log.Info("took the key over from the previous lease",
		zap.String("previous_lease", leaseHex(prev)), zap.String("lease", leaseHex(rg.id)))
	return resp.Header.Revision, true, nil
}

// observation is one reading of a holder's lease while waiting.
type observation struct {
	term      uint64 // raft term seen just before the reading
	remaining int64  // remaining TTL in whole seconds (rounded down)
}

// waitRelease polls until the key is no longer bound to holder (it returns
// nil: the caller tries again) or concludes that holder is alive
// (ErrKeyInUse): its remaining TTL grew with no etcd leader change in
// between (a keep-alive), or the key is still bound to it after its
// remaining TTL plus waitMargin. An etcd leader change, which renews every
// lease, pushes the deadline out to the new remaining TTL.
func (rg *registrar) waitRelease(ctx context.Context, holder clientv3.LeaseID) error {
	log := rg.log.With(zap.String("holder_lease", leaseHex(holder)))
	log.Info("key is held by another lease; waiting for it to expire")
	var (
		start    = time.Now()
		deadline time.Time
		interval = 100 * time.Millisecond
		hist     []observation // the last three, oldest first
		timer    = time.NewTimer(0)
	)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("leases: register %q: waiting for lease %x to expire: %w", rg.key, holder, context.Cause(ctx))
		case <-timer.C:
		}
		timer.Reset(interval)
		cctx, cancel := rg.reqCtx(ctx)
		get, err := rg.cli.Get(cctx, rg.key)
		cancel()
		if err != nil {
			log.Debug("reading the key while waiting failed; will retry", zap.Error(err))
			continue
		}
		if len(get.Kvs) == 0 || clientv3.LeaseID(get.Kvs[0].Lease) != holder {
			return nil
		}
		cctx, cancel = rg.reqCtx(ctx)
		ttl, err := rg.cli.TimeToLive(cctx, holder)
		cancel()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && ttl.TTL < 0) {
			return nil // expired; its key goes in the same etcd transaction
		}
		if err != nil {
			log.Debug("reading the holder's lease while waiting failed; will retry", zap.Error(err))
			continue
		}
		now := time.Now()
		interval = min(max(time.Duration(ttl.GrantedTTL)*time.Second/20, 100*time.Millisecond), 500*time.Millisecond)
		o := observation{term: get.Header.RaftTerm, remaining: ttl.TTL}
		if deadline.IsZero() || o.term != hist[len(hist)-1].term {
			deadline = later(deadline, now.Add(time.Duration(o.remaining)*time.Second+waitMargin))
		}
		hist = append(hist, o)
		if len(hist) > 3 {
			hist = hist[1:]
		}
		if len(hist) == 3 && hist[1].remaining > hist[0].remaining && hist[0].term == hist[2].term {
			return fmt.Errorf("%w: register %q: held by live lease %x (renewed while we waited %s)", ErrKeyInUse, rg.key, holder, now.Sub(start).Round(time.Millisecond))
		}
		if now.After(deadline) {
			return fmt.Errorf("%w: register %q: still held by lease %x after waiting %s", ErrKeyInUse, rg.key, holder, now.Sub(start).Round(time.Millisecond))
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func leaseHex(id clientv3.LeaseID) string { return fmt.Sprintf("%x", int64(id)) }
