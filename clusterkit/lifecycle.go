package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	etcdversion "go.etcd.io/etcd/api/v3/version"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// Start connects to etcd (or starts or joins the embedded one), registers
// this node and returns once it holds a partition map (made by the leader,
// which may be this node). ctx bounds the whole start; on error everything
// Start did is undone (the node is not left registered) and Start may be
// called again. It fails with ErrNodeIDInUse if another live process holds
// NodeID, ErrConfigMismatch if the cluster was created with other
// settings, and ErrStopped after Stop. Stop waits for a running Start.
func (ck *ClusterKit) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ck.startMu.Lock()
	ck.startCancel = cancel
	ck.startMu.Unlock()
	ck.lifeMu.Lock()
	defer ck.lifeMu.Unlock()
	if ck.stopped {
		return ErrStopped
	}
	if ck.started.Load() {
		return errors.New("clusterkit: already started")
	}
	r := newRun(ck)
	if err := r.start(ctx); err != nil {
		// Undo everything, as a graceful leave: revoke the lease (the
		// others must not keep a half-started node as a member) and give
		// up an etcd voter seat this start may have taken.
		r.teardown(context.Background(), true)
		ck.active.Store(nil)
		return err
	}
	ck.started.Store(true)
	if ck.opts.InsecurePlaintext {
		ck.log.Warn("InsecurePlaintext: etcd, joins and the HTTP API run without TLS; anyone who reaches the ports can read and rewrite the cluster")
	}
	ck.log.Info("started", zap.String("http", r.httpAddr), zap.String("advertise", r.advertiseAddr()),
		zap.Int64("incarnation", ck.incarnation), zap.Int64("lease", int64(r.reg.Load().LeaseID())))
	return nil
}

// start runs the steps of Start in order; teardown undoes any prefix of
// them.
func (r *run) start(ctx context.Context) error {
	ln, err := net.Listen("tcp", r.ck.opts.HTTPAddr)
	if err != nil {
		return fmt.Errorf("clusterkit: listen on HTTPAddr %q: %w", r.ck.opts.HTTPAddr, err)
	}
	r.httpAddr = ln.Addr().String()
	if err := r.connect(ctx); err != nil {
		ln.Close()
		return err
	}
	r.ck.active.Store(r) // the handlers, HealthCheck and the metrics see it from now on
	r.serveHTTP(ln)
	if r.cfg, err = r.ensureConfig(ctx); err != nil {
		return err
	}
	if err := r.followState(ctx); err != nil {
		return err
	}
	if err := r.registerAtStart(ctx); err != nil {
		return err
	}
	if r.tls != nil {
		if err := r.startCertRenewal(r.tls.holder); err != nil {
			return err
		}
	}
	r.wg.Go(r.membershipLoop)
	r.wg.Go(r.readyWriter)
	r.wg.Go(r.healthLoop)
	if len(r.ck.opts.Etcd.Endpoints) == 0 {
		r.wg.Go(r.etcdUpkeepLoop)
	}
	if r.conns != nil {
		r.wg.Go(r.memberProbeLoop)
	}
	// Wait until the view holds this registration (this lease, not a
	// previous process's it took over) and a map exists.
	lease := int64(r.reg.Load().LeaseID())
	me := r.ck.opts.NodeID
	err = r.follower.waitFor(ctx, func(v *view) bool {
		m, member := v.members[me]
		return member && m.Lease == lease && v.assign != nil
	})
	if err != nil {
		return fmt.Errorf("clusterkit: start: waiting for a partition map: %w", err)
	}
	return nil
}

// serveHTTP serves the node's HTTP API on ln until teardown: over TLS
// and plain HTTP, or TLS only, or plain HTTP only (see serverTLS).
func (r *run) serveHTTP(ln net.Listener) {
	if cfg, plain := r.serverTLS(); cfg != nil {
		ln = newMixedListener(ln, cfg, plain)
	}
	// The server's own log (refused TLS handshakes, mostly) goes to debug.
	errLog, _ := zap.NewStdLogAt(r.ck.log.Named("http"), zap.DebugLevel)
	r.http = &http.Server{Handler: r.ck.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute, ErrorLog: errLog}
	r.wg.Go(func() {
		if err := r.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.ck.log.Error("http server stopped", zapErr(err))
		}
	})
}

// followState starts the dispatcher, the watch of the cluster's prefix and
// the follower that applies it, and waits for the first batch.
func (r *run) followState(ctx context.Context) error {
	ck := r.ck
	disp := newDispatcher(r.ctx, &r.wg, ck.log, ck.opts.HookConcurrency)
	r.notifier = &notifier{hooks: &ck.hooks, disp: disp, metrics: ck.metrics, log: ck.log}
	r.follower = newFollower(r.ctx, followerConfig{
		me: ck.opts.NodeID, decoder: decoder{keys: ck.keys, partitions: ck.opts.PartitionCount, log: ck.log,
			decodeErrors: func(kind string) { ck.metrics.decodeErrors.WithLabelValues(kind).Inc() }},
		notifier: r.notifier, ready: r.ready, snap: &ck.snap, afterApply: r.afterApply,
	})
	// The view keeps what it needs of every value (decoded, or raw for
	// ready records): the watcher need not keep a second copy (~0.7 MB
	// per node at 200 × 16,384).
	opts := []watcher.Option{watcher.WithLogger(ck.log), watcher.WithRequestTimeout(stateReadTimeout(ck.opts.LeaseTTL)),
		watcher.WithoutPrevValues()}
	if len(ck.opts.Etcd.Endpoints) == 0 {
		// Every member is embedded etcd of a ClusterKit build: no Status
		// request (etcd #21966, #22189) to learn the version.
		opts = append(opts, watcher.WithServerVersion(etcdversion.Version))
	}
	w, err := watcher.Watch(r.ctx, r.cli, ck.keys.root, opts...)
	if err != nil {
		return fmt.Errorf("clusterkit: watch cluster state: %w", err)
	}
	r.watch.Store(w)
	r.wg.Go(func() { r.follower.follow(w) })
	if err := r.follower.waitFor(ctx, func(v *view) bool { return v.rev > 0 }); err != nil {
		return fmt.Errorf("clusterkit: start: %w", err)
	}
	return nil
}

// afterApply runs on the follower after every batch.
func (r *run) afterApply(now time.Time) {
	r.syncWatchStats()
	r.checkHealth(now)
}

// syncWatchStats adds the watcher's re-reads and coalesced batches since
// the last call to their counters (a re-read that found nothing new
// delivers no batch).
func (r *run) syncWatchStats() {
	w := r.watch.Load()
	if w == nil {
		return
	}
	st := w.Stats()
	if old := r.resyncsSeen.Swap(st.Resyncs); st.Resyncs > old {
		r.ck.metrics.watchResyncs.Add(float64(st.Resyncs - old))
	}
	if old := r.coalescedSeen.Swap(st.Coalesced); st.Coalesced > old {
		r.ck.metrics.watchCoalesced.Add(float64(st.Coalesced - old))
	}
}

// Stop leaves the cluster gracefully: it hands leadership over, marks the
// member as leaving (so others report graceful_shutdown), revokes its lease,
// and stops everything this node started. It is idempotent; ctx bounds the
// goodbye, not the local clean-up. A goodbye that etcd cannot take (it is
// unreachable, or every node is stopping at once) is logged and becomes a
// lease expiry for the others; Stop returns an error when ctx ends before
// the goodbye did.
func (ck *ClusterKit) Stop(ctx context.Context) error {
	ck.cancelStart()
	ck.lifeMu.Lock()
	defer ck.lifeMu.Unlock()
	if ck.stopped {
		return nil
	}
	ck.stopped = true
	defer ck.metrics.unregister()
	if !ck.started.Load() {
		return nil
	}
	err := ck.active.Load().teardown(ctx, true)
	ck.log.Info("stopped")
	return err
}

// Halt stops this node without leaving: its lease is neither revoked nor
// kept alive, so the others see it leave with reason lease_expired after
// LeaseTTL, exactly as after a crash. It is for tests and for processes
// that must exit at once. Idempotent; Stop after Halt does nothing.
func (ck *ClusterKit) Halt() {
	ck.cancelStart()
	ck.lifeMu.Lock()
	defer ck.lifeMu.Unlock()
	if ck.stopped {
		return
	}
	ck.stopped = true
	if ck.started.Load() {
		ck.active.Load().teardown(context.Background(), false)
	}
	ck.metrics.unregister()
	ck.log.Info("halted")
}

// cancelStart makes a Start in progress fail at once.
func (ck *ClusterKit) cancelStart() {
	ck.startMu.Lock()
	defer ck.startMu.Unlock()
	if ck.startCancel != nil {
		ck.startCancel()
	}
}
