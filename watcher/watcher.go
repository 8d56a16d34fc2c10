package watcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Errors returned by this package.
var (
	// ErrInvalidArgument is wrapped by Watch's error for a nil client, an
	// empty prefix or a bad option; the message names the culprit.
	ErrInvalidArgument = errors.New("watcher: invalid argument")
	// ErrClosed is what Err returns after Close stopped the watcher.
	ErrClosed = errors.New("watcher: closed")
	// ErrClientClosed is what Err returns when the watcher stopped because
	// its etcd client was closed.
	ErrClientClosed = errors.New("watcher: etcd client closed")
)

// Internal reasons for a watch to end.
var (
	// errCompacted: etcd compacted the watch's start revision.
	errCompacted = errors.New("watcher: required revision compacted")
	// errSilent: etcd did not answer for two progress intervals (or
	// longer: see Watcher.silentStreak).
	errSilent = errors.New("watcher: no answer from etcd for two progress intervals")
	// errNotCreated: etcd did not create the watch within the silence bound.
	errNotCreated = errors.New("watcher: watch not created in time")
)

// Watcher follows one prefix. Create it with Watch; the zero value is not
// usable. Its methods are safe for concurrent use.
//
// One goroutine, owned by the Watcher, reads etcd and sends on Batches; it
// exits (closing Batches, then Done) when the context given to Watch ends,
// when Close is called, or when the etcd client is closed. The client is the
// caller's: the watcher never closes it, and it must outlive the watcher (or
// the watcher stops with ErrClientClosed).
type Watcher struct {
	cli    *clientv3.Client
	prefix string
	cfg    config
	log    *zap.Logger

	ctx    context.Context // ends when the watcher must stop; its cause is Err
	cancel context.CancelCauseFunc
	// watchCtx is ctx with the require-leader metadata. Each watch
	// attempt has a clientv3.Watcher, so a gRPC stream, of its own (see
	// watchOnce): etcd answers a progress request only when every watch
	// on the stream is in sync, so a stream of our own keeps other
	// watches (ours or other packages') from silencing our progress probe;
	// and a stream per attempt makes a watch that went silent (its member
	// frozen or cut off with the connection still open) start on a new
	// stream, which the client's round-robin puts on another member,
	// instead of joining the silent one.
	watchCtx context.Context
	out      chan Batch
	done     chan struct{}

	// rev is the revision the consumer's state is at (see Revision);
	// received is the revision the watcher's state is at: the newest
	// change read from etcd, delivered or still in the outbox.
	rev      atomic.Int64
	received atomic.Int64
	// trustProgress: every etcd endpoint runs a version whose progress
	// notifications come only once a watch has caught up (3.4.24+, 3.5.8+,
	// 3.6+). Older servers (etcd #15220) may answer a progress request with
	// their current revision while the watch is still catching up, so
	// there a progress notification only proves liveness and never moves
	// rev (moving it would drop the events still on their way).
	trustProgress bool
	watches       atomic.Int64
	// silentStreak counts the watch attempts in a row that etcd left
	// silent soon after they began (see noteAttempt); each doubles the
	// silence bound of the next. Only the run goroutine uses it.
	silentStreak int
	resyncs      atomic.Int64
	coalesced    atomic.Int64

	// For Connected: up is false after a failed watch or read and true
	// after any answer from etcd; heard is when etcd last answered, as
	// nanoseconds since epoch.
	epoch time.Time
	up    atomic.Bool
	heard atomic.Int64

	// Owned by the run goroutine: the state as last received (what the
	// consumer holds once it has received everything) and what it has not
	// received yet.
	state map[string]kv
	box   outbox
}

// Stats are counters of a Watcher's history, for metrics and tests.
type Stats struct {
	// Watches is the number of watch requests made: 1 for the first, plus
	// one per resumption after a failure, a silence or a re-read.
	Watches int64
	// Resyncs is the number of re-reads after a compaction.
	Resyncs int64
	// Coalesced is the number of Coalesced batches offered on Batches:
	// how often the consumer fell behind by more than the queue bound.
	Coalesced int64
}

// Watch reads every key under prefix (with a timeout, see
// WithRequestTimeout), then starts a goroutine that watches the prefix for
// the changes after the read's revision, until ctx ends or Close is called.
// It returns the read's error, wrapped, if the read fails, and an error
// wrapping ErrInvalidArgument for a nil client, an empty prefix or a bad
// option.
//
// The first Batch on Batches is the read (Initial); then come the changes.
// See Batch for the order and the meaning of the batches.
//
// Each Watcher opens a gRPC watch stream of its own on cli's connection
// (clientv3 otherwise puts all watches with the same context metadata on one
// stream, and etcd answers a progress request only when every watch of the
// stream is in sync, so one lagging watch would silence the others): each
// watch attempt has a clientv3.Watcher of its own, closed when it ends.
func Watch(ctx context.Context, cli *clientv3.Client, prefix string, opts ...Option) (*Watcher, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: client is nil", ErrInvalidArgument)
	}
	if prefix == "" {
		return nil, fmt.Errorf("%w: prefix is empty (that would watch the whole key space)", ErrInvalidArgument)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancelCause(ctx)
	w := &Watcher{
		cli:    cli,
		prefix: prefix,
		cfg:    cfg,
		log:    cfg.logger.With(zap.String("prefix", prefix)),
		ctx:    wctx,
		cancel: cancel,
		out:    make(chan Batch),
		done:   make(chan struct{}),
		epoch:  time.Now(),
	}
	w.watchCtx = clientv3.WithRequireLeader(wctx)
	if cfg.serverVersion != "" {
		w.trustProgress = progressFixedIn(cfg.serverVersion)
	} else {
		w.trustProgress = progressIsSafe(ctx, cli, cfg.requestTimeout)
	}
	resp, err := w.get()
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("watcher: initial read of prefix %q: %w", prefix, err)
	}
	initial := Batch{Revision: resp.Header.Revision, Initial: true, Events: make([]Event, 0, len(resp.Kvs))}
	w.state = make(map[string]kv, len(resp.Kvs))
	for _, p := range resp.Kvs {
		k, cur := string(p.Key), kvOf(p)
		w.state[k] = w.kept(cur)
		initial.Events = append(initial.Events, putEvent(k, cur, nil))
	}
	w.heardFromEtcd()
	w.received.Store(initial.Revision)
	w.offer(initial)
	go w.run()
	return w, nil
}

// Batches returns the channel of batches, in order. It is closed when the
// watcher stops. The channel is unbuffered, but the watcher keeps reading
// etcd while the consumer is busy: up to 1 MiB of changes wait behind the
// batch on offer as they came, one batch per revision; past that the
// watcher coalesces everything the consumer has not received into one
// Coalesced batch, so its memory is bounded by the keys under the prefix.
// The consumer must keep receiving or stop the watcher.
func (w *Watcher) Batches() <-chan Batch { return w.out }

// Revision returns the etcd revision the consumer's state is at: the
// revision of the last batch received, or a later one confirmed by a
// progress notification (no change under the prefix up to it; only with
// etcd 3.4.24+, 3.5.8+ or 3.6+, whose notifications can be trusted for
// that, see etcd #15220). It may
// already include the one batch currently offered on Batches, so that once
// a consumer has received a batch, Revision() >= its Revision. It is 0
// until the initial batch is offered.
func (w *Watcher) Revision() int64 { return w.rev.Load() }

// Connected reports whether the watcher is currently in touch with etcd: its
// last read or watch did not fail and, with a progress interval set (see
// WithProgressInterval), etcd answered within the last two intervals. It is
// false while the watcher retries after a failure, while it cannot reach
// etcd, and after it stopped. A slow consumer does not make it silent:
// while the consumer has not received everything, the watcher keeps
// reading etcd but neither probes it nor counts silence.
func (w *Watcher) Connected() bool {
	if !w.up.Load() {
		return false
	}
	iv := w.cfg.progressInterval
	return iv == 0 || w.silence() <= 2*iv
}

// silence returns how long etcd has not answered.
func (w *Watcher) silence() time.Duration {
	return time.Since(w.epoch) - time.Duration(w.heard.Load())
}

// heardFromEtcd records an answer from etcd.
func (w *Watcher) heardFromEtcd() {
	w.heard.Store(int64(time.Since(w.epoch)))
	w.up.Store(true)
}

// Stats returns the watcher's counters.
func (w *Watcher) Stats() Stats {
	return Stats{Watches: w.watches.Load(), Resyncs: w.resyncs.Load(), Coalesced: w.coalesced.Load()}
}

// Done returns a channel closed once the watcher has stopped and closed
// Batches.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Err returns nil while the watcher runs; once it has stopped, why: ErrClosed
// after Close, ErrClientClosed if the etcd client was closed, else the
// context's error (or cause).
func (w *Watcher) Err() error {
	select {
	case <-w.done:
		return context.Cause(w.ctx)
	default:
		return nil
	}
}

// Close stops the watcher and waits for its goroutine, also while it
// waits for a consumer that does not receive. It is idempotent and
// may be called from any goroutine, the consumer's included.
func (w *Watcher) Close() {
	w.cancel(ErrClosed)
	<-w.done
}

// run is the watcher's goroutine.
func (w *Watcher) run() {
	defer close(w.done)
	defer close(w.out)
	defer w.up.Store(false)

	bo := backoff{min: w.cfg.minBackoff, max: w.cfg.maxBackoff}
	for {
		began := time.Now()
		healthy, err := w.watchOnce()
		w.noteAttempt(err, time.Since(began))
		if w.ctx.Err() != nil {
			return
		}
		if w.cli.Ctx().Err() != nil {
			w.cancel(ErrClientClosed)
			return
		}
		if errors.Is(err, errCompacted) {
			w.log.Info("watch start revision compacted; re-reading", zap.Int64("revision", w.received.Load()), zap.Error(err))
			if !w.resync(&bo) {
				return
			}
			continue
		}
		w.up.Store(false)
		if healthy {
			bo.reset()
		}
		d := bo.next()
		w.log.Debug("watch ended; watching again after backoff", zap.Int64("revision", w.received.Load()), zap.Duration("backoff", d), zap.Error(err))
		if !w.sleep(d) {
			return
		}
	}
}

// watchOnce watches until the watch fails, etcd stays silent for two
// progress intervals, or the watcher stops. healthy reports whether the
// watch worked for a while (etcd sent something after creating it, or it
// lasted the maximum backoff), in which case the backoff restarts from its
// minimum.
//
// The watch starts at the last received (or confirmed) revision itself,
// not at the next one, and deliver drops the events of that revision again:
// etcd does not answer progress requests on a stream with a watch whose
// start revision is above its current revision, so a watch from last + 1
// on a quiet etcd would get no progress notification until the next write.
// The client's own transparent resumption after a reconnect does start at
// last + 1, so the first silence after it makes us watch again.
func (w *Watcher) watchOnce() (healthy bool, err error) {
	w.watches.Add(1)
	// The attempt's own clientv3.Watcher: closing it closes every stream
	// it opened. (A creation cancelled before clientv3 took the request,
	// or a progress request after clientv3 dropped the stream, leaves a
	// stream that nothing else would ever close: one per attempt of every
	// node under load, 11,292 at 351 scalebench nodes.)
	wc := clientv3.NewWatcher(w.cli)
	defer wc.Close()
	ctx, cancel := context.WithCancel(w.watchCtx)
	defer cancel()
	start := time.Now()
	defer func() {
		if time.Since(start) >= w.cfg.maxBackoff {
			healthy = true
		}
	}()

	// Watch returns once etcd has created the watch (or it failed); while
	// etcd is unreachable it blocks, and Connected turns false by the clock.
	// With a progress interval, a creation that takes longer than the
	// silence bound (the member is frozen, or cut off with the connection
	// open) is cancelled: the closed channel makes us watch again, on a
	// new stream. Only the creation: a created watch ends by silence
	// (below), not by this clock (which cut every watch after 2 s).
	creating := func() bool { return true }
	if iv := w.cfg.progressInterval; iv > 0 {
		creating = time.AfterFunc(w.silenceBound(), cancel).Stop
	}
	wch := wc.Watch(ctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.received.Load()),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	if !creating() {
		return healthy, errNotCreated
	}
	// Measure silence from now, not from before a long wait in Watch.
	w.heard.Store(int64(time.Since(w.epoch)))

	var tick <-chan time.Time
	if iv := w.cfg.progressInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	for {
		out, head := w.offered()
		select {
		case <-w.ctx.Done():
			return healthy, w.ctx.Err()
		case out <- head:
			w.taken()
		case resp, ok := <-wch:
			switch {
			case !ok:
				return healthy, errors.New("watcher: watch channel closed")
			case resp.CompactRevision != 0:
				return healthy, fmt.Errorf("%w: want %d, compacted up to %d", errCompacted, w.received.Load(), resp.CompactRevision)
			case resp.Canceled || resp.Err() != nil:
				return healthy, fmt.Errorf("watcher: watch canceled: %w", resp.Err())
			}
			w.heardFromEtcd()
			switch {
			case resp.Created:
			case resp.IsProgressNotify():
				healthy = true
				if r := resp.Header.Revision; w.trustProgress && r > w.received.Load() {
					w.confirm(r)
				}
			default:
				healthy = true
				w.deliver(resp.Events)
			}
		case <-tick:
			if !w.box.empty() {
				// The consumer is behind, so this process is busy: ask
				// etcd nothing and count no silence until it has caught
				// up, as when the watcher waited on it (probing, or
				// watching again, would only add load to a saturated
				// process and its etcd).
				w.heard.Store(int64(time.Since(w.epoch)))
				continue
			}
			// A watch that starts at an old revision is "catching up" for
			// etcd, which syncs such watches (and answers their progress
			// requests) only every 100 ms: never call that silence.
			if w.silence() > w.silenceBound() {
				return healthy, errSilent
			}
			w.requestProgress(ctx, wc)
		}
	}
}

// requestProgress asks etcd for a progress notification on the stream of
// the attempt's watcher wc. The answer, if any, comes on the watch channel.
// (For a stream it no longer holds, clientv3 opens a new one: wc.Close
// closes that one too.)
func (w *Watcher) requestProgress(ctx context.Context, wc clientv3.Watcher) {
	ctx, cancel := context.WithTimeout(ctx, min(w.cfg.progressInterval, w.cfg.requestTimeout))
	defer cancel()
	if err := wc.RequestProgress(ctx); err != nil {
		w.log.Debug("progress request failed", zap.Error(err))
	}
}

// deliver applies events (in revision order, possibly several revisions)
// to the state and hands the consumer one batch per revision. Events at or
// below the last received revision are dropped: they were received
// already.
func (w *Watcher) deliver(evs []*clientv3.Event) {
	for i := 0; i < len(evs); {
		rev := evs[i].Kv.ModRevision
		j := i + 1
		for j < len(evs) && evs[j].Kv.ModRevision == rev {
			j++
		}
		if rev <= w.received.Load() {
			i = j
			continue
		}
		b := Batch{Revision: rev, Events: make([]Event, 0, j-i)}
		// The keys' states before the batch matter only if it waits (a
		// batch offered at once is never merged): none are kept otherwise.
		var before []keyState
		waits := !w.box.empty()
		for _, ev := range evs[i:j] {
			e, was := w.apply(ev)
			b.Events = append(b.Events, e)
			if waits {
				before = append(before, was)
			}
		}
		w.enqueue(b, before)
		i = j
	}
}

// apply records ev in the state and returns it as an Event, with its key
// as it was before.
func (w *Watcher) apply(ev *clientv3.Event) (Event, keyState) {
	k := string(ev.Kv.Key)
	prev, had := w.state[k]
	was := keyState{kv: prev, present: had}
	if ev.Type == clientv3.EventTypeDelete {
		delete(w.state, k)
		return deleteEvent(k, prev, ev.Kv.ModRevision), was // prev is zero (PrevValue nil) if unknown
	}
	cur := kvOf(ev.Kv)
	w.state[k] = w.kept(cur)
	var pv []byte
	if had {
		pv = prev.value
	}
	return putEvent(k, cur, pv), was
}

// kept returns what the state keeps of cur: all of it, or without its
// value under WithoutPrevValues (an empty value, so that a nil PrevValue
// still means "absent").
func (w *Watcher) kept(cur kv) kv {
	if w.cfg.noPrevValues {
		cur.value = []byte{}
	}
	return cur
}

// resync re-reads the prefix, retrying with backoff until it succeeds or
// the watcher stops, and delivers the net difference from the last state
// delivered as a Resync batch (nothing if nothing changed). It returns false
// if the watcher stopped.
func (w *Watcher) resync(bo *backoff) bool {
	var resp *clientv3.GetResponse
	for {
		var err error
		if resp, err = w.get(); err == nil {
			break
		}
		if w.ctx.Err() != nil {
			return false
		}
		if w.cli.Ctx().Err() != nil {
			w.cancel(ErrClientClosed)
			return false
		}
		w.up.Store(false)
		d := bo.next()
		w.log.Debug("re-read failed; retrying after backoff", zap.Duration("backoff", d), zap.Error(err))
		if !w.sleep(d) {
			return false
		}
	}
	bo.reset()
	w.resyncs.Add(1)
	w.heardFromEtcd()
	fresh := make(map[string]kv, len(resp.Kvs))
	for _, p := range resp.Kvs {
		fresh[string(p.Key)] = kvOf(p)
	}
	rev := resp.Header.Revision
	changes := changesBetween(w.state, fresh)
	evs := netEvents(changes, rev)
	for k, cur := range fresh {
		fresh[k] = w.kept(cur)
	}
	w.state = fresh
	w.log.Info("re-read prefix", zap.Int64("revision", rev), zap.Int("changes", len(evs)))
	if len(evs) == 0 {
		w.confirm(rev)
		return true
	}
	before := make([]keyState, len(evs))
	for i, e := range evs {
		before[i] = changes[e.Key].before
	}
	w.enqueue(Batch{Events: evs, Revision: rev, Resync: true}, before)
	return true
}

// readPageKeys bounds the keys of one read request of the prefix (a
// variable for tests).
var readPageKeys int64 = 1000

// get reads the prefix at one revision, in pages of readPageKeys keys,
// each with the request timeout, so that a large prefix is neither one
// large response nor one request that must finish within one timeout.
// Every page requires a leader, so it fails fast on a member that lost
// its leader. If the revision of the first page is compacted before the
// last is read, it reads again from the start.
func (w *Watcher) get() (*clientv3.GetResponse, error) {
	end := clientv3.GetPrefixRangeEnd(w.prefix)
	for {
		var out *clientv3.GetResponse
		from := w.prefix
		for {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(readPageKeys)}
			if out != nil {
				opts = append(opts, clientv3.WithRev(out.Header.Revision))
			}
			ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(w.ctx), w.cfg.requestTimeout)
			resp, err := w.cli.Get(ctx, from, opts...)
			cancel()
			if err != nil {
				if out != nil && errors.Is(err, rpctypes.ErrCompacted) {
					break // read again, at a newer revision
				}
				return nil, err
			}
			if out == nil {
				out = resp
			} else {
				out.Kvs = append(out.Kvs, resp.Kvs...)
			}
			if !resp.More || len(resp.Kvs) == 0 {
				out.More = false
				return out, nil
			}
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
}

// enqueue hands b (before: each event's key before it; nil when the
// consumer has received everything), the changes of revision b.Revision,
// to the consumer: on offer at once if it has received everything, else
// behind what it has not (see outbox).
func (w *Watcher) enqueue(b Batch, before []keyState) {
	w.received.Store(b.Revision)
	if w.box.add(b, before) {
		w.offer(b)
	}
}

// offer puts b on offer on Batches.
func (w *Watcher) offer(b Batch) {
	// Stored before the offer, so that a consumer that has received b sees
	// Revision() >= b.Revision.
	w.rev.Store(b.Revision)
	w.box.head = &b
}

// offered returns the channel and batch for a send case: a nil channel
// (never ready) when nothing is on offer.
func (w *Watcher) offered() (chan<- Batch, Batch) {
	if w.box.head == nil {
		return nil, Batch{}
	}
	return w.out, *w.box.head
}

// taken moves on after the consumer received the batch on offer.
func (w *Watcher) taken() {
	b, ok, coalesced := w.box.next(w.received.Load())
	switch {
	case coalesced:
		w.coalesced.Add(1)
		fallthrough
	case ok:
		w.offer(b)
	default: // the consumer holds everything received
		w.rev.Store(w.received.Load())
	}
}

// confirm records that nothing under the prefix changed between the last
// received revision and r.
func (w *Watcher) confirm(r int64) {
	w.received.Store(r)
	if w.box.empty() {
		w.rev.Store(r)
	}
}

// sleep waits d, offering batches meanwhile, then waits until the consumer
// has received everything (so that no batch waits behind a watch that
// takes long to start); it returns false if the watcher stopped.
func (w *Watcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	slept := false
	for !slept || !w.box.empty() {
		out, head := w.offered()
		select {
		case <-t.C:
			slept = true
		case out <- head:
			w.taken()
		case <-w.ctx.Done():
			return false
		}
	}
	return true
}

// backoff is a doubling, jittered wait between min and max. The zero cur
// means "next wait is min".
type backoff struct {
	min, max, cur time.Duration
}

// next returns the next wait, drawn from [cur/2, cur], and doubles cur.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// maxSilentStreak caps Watcher.silentStreak: the silence bound grows to
// 2^4 = 16 times its base (32 s with the default progress interval).
const maxSilentStreak = 4

// silenceBound is how long etcd may not answer this attempt: the base
// bound, doubled for each attempt in a row that etcd left silent soon
// after it began.
func (w *Watcher) silenceBound() time.Duration {
	return silenceBound(w.cfg.progressInterval) << w.silentStreak
}

// noteAttempt updates silentStreak after an attempt that ended with err
// after lasting d. A silence (or a creation that timed out) within ten
// base bounds of the start counts: a member frozen after a long healthy
// watch is left at the base bound, but an etcd too loaded to answer a
// new watch in time (hundreds of watches catching up, each re-watch
// replaying the history since its revision once more) is given longer
// each time rather than asked again and again.
func (w *Watcher) noteAttempt(err error, d time.Duration) {
	soon := d < 10*silenceBound(w.cfg.progressInterval)
	if (errors.Is(err, errSilent) || errors.Is(err, errNotCreated)) && soon {
		w.silentStreak = min(w.silentStreak+1, maxSilentStreak)
		return
	}
	w.silentStreak = 0
}

// silenceBound is how long etcd may not answer a watch probed every
// interval before the watch is given up as silent.
func silenceBound(interval time.Duration) time.Duration { return max(2*interval, minSilence) }

// minSilence is the least time without an answer from etcd that counts as
// silence, whatever the progress interval.
const minSilence = 500 * time.Millisecond

// progressIsSafe reports, when the caller did not give the version (see
// WithServerVersion), whether the etcd servers behind cli run a version whose progress notifications can be trusted to carry the
// revision a watch has caught up to (see Watcher.trustProgress). It asks
// every endpoint at once, each for at most statusTimeout: an endpoint
// that does not answer (a member that is gone) serves no watch and is not
// counted; if none answers, or one runs an older etcd, it is unsafe.
func progressIsSafe(ctx context.Context, cli *clientv3.Client, timeout time.Duration) bool {
	eps := cli.Endpoints()
	versions := make(chan string, len(eps))
	for _, ep := range eps {
		go func() {
			sctx, cancel := context.WithTimeout(ctx, min(timeout, statusTimeout))
			defer cancel()
			st, err := cli.Status(sctx, ep)
			if err != nil {
				versions <- ""
				return
			}
			versions <- st.Version
		}()
	}
	answered, safe := 0, true
	for range eps {
		if v := <-versions; v != "" {
			answered++
			safe = safe && progressFixedIn(v)
		}
	}
	return answered > 0 && safe
}

// statusTimeout bounds the version check of one endpoint.
const statusTimeout = 500 * time.Millisecond

// progressFixedIn reports whether etcd version v (e.g. "3.4.23") has the
// fix of etcd #15220: 3.4.24+, 3.5.8+, 3.6 and later.
func progressFixedIn(v string) bool {
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); err != nil {
		return false
	}
	switch {
	case major != 3:
		return major > 3
	case minor == 4:
		return patch >= 24
	case minor == 5:
		return patch >= 8
	default:
		return minor > 5
	}
}
