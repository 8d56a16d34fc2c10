package clusterkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/election"
	"github.com/clusterkit-go/clusterkit/leases"
	"github.com/clusterkit-go/clusterkit/placement"
	"github.com/clusterkit-go/clusterkit/watcher"
)

// Timing of the leader and of etcd requests.
const (
	// requestTimeout bounds every single etcd request.
	requestTimeout = 5 * time.Second
	// maxGoodbye bounds a graceful leave whose context has no deadline.
	maxGoodbye = 10 * time.Second
	// debounceQuiet is how long membership must stay unchanged before the
	// leader plans; debounceMax bounds the wait under constant churn.
	debounceQuiet = 20 * time.Millisecond
	debounceMax   = 250 * time.Millisecond
	// maxAssignmentBytes keeps the map under etcd's default request limit
	// (1.5 MiB) with room for the rest of the Txn.
	maxAssignmentBytes = 1 << 20
	// version is written in member records.
	version = "0.1.0"
)

// runtime is everything a started node runs. Start creates it; Stop and
// Halt end it.
type runtime struct {
	ck      *ClusterKit
	cfg     clusterConfig
	tracker *tracker
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	http    *http.Server
	watch   atomic.Pointer[watcher.Watcher]

	mu          sync.Mutex
	leadership  *election.Leadership
	readySet    map[int]int64 // partition → since, this node's ready record
	failing     map[int]bool  // partitions whose handoff is failing
	record      memberRecord  // this node's member record
	removed     bool          // an admin removed this node: do not come back
	leaving     atomic.Bool   // Stop or Halt began: do not campaign or register again
	resyncsSeen atomic.Int64  // watcher re-reads already counted
	// joinCtx bounds the background etcd join; teardown cancels it and
	// waits (joinWG) before deciding whether to leave etcd.
	joinCtx    context.Context
	joinCancel context.CancelFunc
	joinWG     sync.WaitGroup
	// wantHealthy is the application probe's verdict; publishedHealthy is
	// what this node's member record says.
	wantHealthy      bool
	publishedHealthy bool
	healthMu         sync.Mutex // orders health evaluations and their events
	health           string     // last status reported to OnClusterHealthChange; guarded by healthMu
	readyWake        chan struct{}
	// readyWritten is what the ready writer last wrote; a new registration
	// (new lease) resets it, since the old record went with the old lease.
	readyWritten map[int]int64
}

// Start connects to etcd (or starts or joins the embedded one), registers
// this node and returns once it holds a partition map (made by the leader,
// which may be this node). ctx bounds the whole start; on error everything
// Start did is undone (the node is not left registered) and Start may be
// called again. It fails with ErrNodeIDInUse if another live process holds
// NodeID, ErrConfigMismatch if the cluster was created with other
// settings, and ErrStopped after Stop. Stop waits for a running Start.
func (ck *ClusterKit) Start(ctx context.Context) (err error) {
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
	rt := &runtime{ck: ck, readySet: map[int]int64{}, failing: map[int]bool{}, readyWake: make(chan struct{}, 1), wantHealthy: true}
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	rt.joinCtx, rt.joinCancel = context.WithCancel(rt.ctx)
	ck.runtime.Store(rt)
	ck.disp = newDispatcher(ck.log, ck.opts.HookConcurrency)
	defer func() {
		if err != nil {
			// Undo everything, as a graceful leave: revoke the lease (the
			// others must not keep a half-started node as a member) and
			// give up an etcd voter seat this start may have taken.
			ck.teardown(context.Background(), true)
			ck.runtime.Store(nil)
		}
	}()

	ln, err := net.Listen("tcp", ck.opts.HTTPAddr)
	if err != nil {
		return fmt.Errorf("clusterkit: listen on HTTPAddr %q: %w", ck.opts.HTTPAddr, err)
	}
	ck.httpAddr = ln.Addr().String()
	if err := ck.connect(ctx); err != nil {
		ln.Close()
		return err
	}
	ck.connected.Store(ck.cli)
	// Serve only once the client exists: the handlers use it.
	rt.http = &http.Server{Handler: ck.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		if err := rt.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			ck.log.Error("http server stopped", zapErr(err))
		}
	}()
	if rt.cfg, err = ck.ensureConfig(ctx); err != nil {
		return err
	}

	rt.tracker = newTracker(ck)
	w, err := watcher.Watch(rt.ctx, ck.cli, ck.keys.root, watcher.WithLogger(ck.log))
	if err != nil {
		return fmt.Errorf("clusterkit: watch cluster state: %w", err)
	}
	rt.watch.Store(w)
	applied := rt.tracker.waitApplied()
	rt.wg.Add(1)
	go func() { defer rt.wg.Done(); rt.tracker.run(w) }()
	select {
	case <-applied:
	case <-ctx.Done():
		return fmt.Errorf("clusterkit: start: %w", ctx.Err())
	}

	if err := rt.register(ctx); err != nil {
		return err
	}
	rt.wg.Add(3)
	go rt.membershipLoop()
	go rt.readyWriter()
	go rt.healthLoop()

	// Wait until the view holds this registration (this incarnation, not
	// a previous one it took over) and a map exists.
	incarnation := int64(ck.reg.Load().LeaseID())
	for {
		ready := false
		ch := rt.tracker.waitApplied()
		rt.tracker.read(func(v *view) {
			m, member := v.members[ck.opts.NodeID]
			ready = member && m.Incarnation == incarnation && v.assign != nil
		})
		if ready {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("clusterkit: start: waiting for a partition map: %w", ctx.Err())
		}
	}
	ck.started.Store(true)
	ck.log.Info("started", zap.String("http", ck.httpAddr), zap.String("advertise", ck.advertiseAddr()),
		zap.Int64("incarnation", int64(ck.reg.Load().LeaseID())))
	return nil
}

// Stop leaves the cluster gracefully: it hands leadership over, marks the
// member as leaving (so others report graceful_shutdown), revokes its lease,
// and stops everything this node started. It is idempotent; ctx bounds the
// goodbye, not the local clean-up.
func (ck *ClusterKit) Stop(ctx context.Context) error {
	ck.cancelStart()
	ck.lifeMu.Lock()
	defer ck.lifeMu.Unlock()
	if ck.stopped {
		return nil
	}
	ck.stopped = true
	if !ck.started.Load() {
		ck.metrics.unregister()
		return nil
	}
	err := ck.teardown(ctx, true)
	ck.metrics.unregister()
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
		ck.teardown(context.Background(), false)
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

// teardown undoes Start. With graceful it resigns, marks the member leaving
// and revokes the lease first; without, the lease is abandoned.
func (ck *ClusterKit) teardown(ctx context.Context, graceful bool) error {
	// One budget for the whole goodbye (see goodbyeCtx).
	ctx, cancelGoodbye := goodbyeCtx(ctx)
	defer cancelGoodbye()
	rt := ck.rt()
	var errs []error
	if rt != nil {
		rt.leaving.Store(true)
		// A background etcd join must end (or finish) before this node
		// decides whether to leave etcd.
		rt.joinCancel()
		rt.joinWG.Wait()
	}
	reg := ck.reg.Load()
	if graceful && reg != nil {
		rt.mu.Lock()
		rt.record.State = memberLeaving // a concurrent health update keeps it
		rec := rt.record
		l := rt.leadership
		rt.mu.Unlock()
		// Hand leadership over first: the next leader can then plan this
		// node's departure as soon as the lease is revoked.
		if l != nil {
			if err := l.Resign(ctx); err != nil {
				errs = append(errs, fmt.Errorf("clusterkit: resign: %w", err))
			}
		}
		if b, err := json.Marshal(rec); err == nil && ctx.Err() == nil {
			if err := reg.Update(ctx, b); err != nil {
				errs = append(errs, fmt.Errorf("clusterkit: mark leaving: %w", err))
			}
		}
		if ctx.Err() != nil {
			// Out of time (etcd unreachable): the lease expires by itself
			// and the others report lease_expired.
			reg.Abandon()
			errs = append(errs, fmt.Errorf("clusterkit: leave cut short, the lease is left to expire: %w", ctx.Err()))
		} else if err := reg.Close(ctx); err != nil && !errors.Is(err, leases.ErrClosed) {
			errs = append(errs, fmt.Errorf("clusterkit: revoke lease: %w", err))
		}
	} else if reg != nil {
		reg.Abandon()
	}
	if graceful && ctx.Err() == nil {
		if err := ck.leaveEtcd(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if rt != nil {
		rt.cancel()
		if rt.http != nil {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if rt.http.Shutdown(sctx) != nil {
				rt.http.Close() // requests still running after 1 s are cut
			}
			cancel()
		}
	}
	if rt != nil {
		if w := rt.watch.Load(); w != nil {
			w.Close()
		}
	}
	// Give the goroutines a moment to end with the client open (a
	// cancelled candidate deletes its key), then close the client: etcd's
	// Campaign, once cancelled, resigns under the client's own context and
	// would otherwise wait for an unreachable etcd forever.
	ck.connected.Store(nil)
	if rt != nil {
		done := make(chan struct{})
		go func() { rt.wg.Wait(); close(done) }()
		t := time.NewTimer(time.Second)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		if ck.cli != nil {
			ck.cli.Close()
		}
		<-done
		if rt.tracker != nil {
			rt.tracker.stopHandoffs()
		}
		// A registration made again while this teardown ran (the
		// membership loop) must not outlive it.
		if late := ck.reg.Load(); late != nil && late != reg {
			if graceful {
				late.Close(ctx)
			} else {
				late.Abandon()
			}
		}
	}
	if ck.cli != nil {
		ck.cli.Close() // idempotent
	}
	if ck.disp != nil {
		ck.disp.stop()
	}
	if m := ck.member.Load(); m != nil {
		if err := m.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("clusterkit: stop embedded etcd: %w", err))
		}
	}
	ck.isLeader.Store(false)
	ck.metrics.isLeader.Set(0)
	return errors.Join(errs...)
}

// goodbyeCtx bounds a leave: by the caller's ctx when it has a deadline;
// by maxGoodbye when it has none; by a fresh maxGoodbye when it is already
// done, so that the goodbye is still attempted once.
func goodbyeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil || ctx.Err() != nil {
		return context.WithTimeout(context.Background(), maxGoodbye)
	}
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, maxGoodbye)
}

// ensureConfig writes the cluster config if it does not exist (create-only
// Txn) and checks that it matches this node's options.
func (ck *ClusterKit) ensureConfig(ctx context.Context) (clusterConfig, error) {
	want := clusterConfig{FormatVersion: formatVersion, PartitionCount: ck.opts.PartitionCount,
		ReplicationFactor: ck.opts.ReplicationFactor, Hash: placement.HashName}
	b, err := json.Marshal(want)
	if err != nil {
		return want, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := ck.keys.config()
	resp, err := ck.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		ck.metrics.etcdErrors.WithLabelValues("config").Inc()
		return want, fmt.Errorf("clusterkit: write cluster config: %w", err)
	}
	if resp.Succeeded {
		return want, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	var got clusterConfig
	if len(kvs) == 0 || json.Unmarshal(kvs[0].Value, &got) != nil {
		return want, fmt.Errorf("%w: cluster %q has an unreadable config", ErrConfigMismatch, ck.opts.ClusterName)
	}
	if got.FormatVersion > formatVersion {
		return want, fmt.Errorf("%w: cluster %q uses format version %d, this node knows %d", ErrConfigMismatch, ck.opts.ClusterName, got.FormatVersion, formatVersion)
	}
	if got.PartitionCount != want.PartitionCount || got.ReplicationFactor != want.ReplicationFactor || got.Hash != want.Hash {
		return want, fmt.Errorf("%w: cluster %q has PartitionCount %d, ReplicationFactor %d, hash %s; this node has %d, %d, %s",
			ErrConfigMismatch, ck.opts.ClusterName, got.PartitionCount, got.ReplicationFactor, got.Hash,
			want.PartitionCount, want.ReplicationFactor, want.Hash)
	}
	return got, nil
}

// advertiseAddr is Options.AdvertiseAddr, or the bound HTTP address with a
// loopback host when it listens on all interfaces.
func (ck *ClusterKit) advertiseAddr() string {
	if ck.opts.AdvertiseAddr != "" {
		return ck.opts.AdvertiseAddr
	}
	host, port, err := net.SplitHostPort(ck.httpAddr)
	if err != nil {
		return ck.httpAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// register creates this node's member record, proving with the saved
// incarnation that a not-yet-expired old record is its own.
func (rt *runtime) register(ctx context.Context) error {
	ck := rt.ck
	rt.mu.Lock()
	healthy := rt.wantHealthy
	rt.mu.Unlock()
	rec := memberRecord{ID: ck.opts.NodeID, Addr: ck.advertiseAddr(), Zone: ck.opts.Zone, Weight: ck.opts.Weight,
		Services: ck.opts.Services, State: memberActive, Healthy: healthy, StartedAt: time.Now().UTC(), Version: version}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var opts []leases.Option
	opts = append(opts, leases.WithLogger(ck.log))
	if prev, ok := ck.loadIncarnation(); ok {
		opts = append(opts, leases.WithPreviousLease(prev))
	}
	reg, err := leases.Register(ctx, ck.cli, ck.keys.member(ck.opts.NodeID), b, ck.opts.LeaseTTL, opts...)
	if err != nil {
		if errors.Is(err, leases.ErrKeyInUse) {
			return fmt.Errorf("%w: %q is held by a live process: %v", ErrNodeIDInUse, ck.opts.NodeID, err)
		}
		if errors.Is(err, leases.ErrInvalidTTL) {
			return fmt.Errorf("%w: LeaseTTL %v: %v", ErrInvalidOptions, ck.opts.LeaseTTL, err)
		}
		ck.metrics.etcdErrors.WithLabelValues("register").Inc()
		return fmt.Errorf("clusterkit: register %q: %w", ck.opts.NodeID, err)
	}
	rec.Incarnation = int64(reg.LeaseID())
	rt.mu.Lock()
	rt.record = rec
	rt.publishedHealthy = healthy
	rt.readyWritten = nil
	rt.mu.Unlock()
	ck.reg.Store(reg)
	rt.wakeReady()
	ck.saveIncarnation(reg.LeaseID())
	return nil
}

// The incarnation file holds the lease ID of this node's last registration,
// the proof that lets a restarted process take its own record over at once.
func (ck *ClusterKit) incarnationPath() string {
	return filepath.Join(ck.opts.DataDir, "incarnation-"+ck.opts.ClusterName)
}

func (ck *ClusterKit) loadIncarnation() (clientv3.LeaseID, bool) {
	b, err := os.ReadFile(ck.incarnationPath())
	if err != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || id == 0 {
		return 0, false
	}
	return clientv3.LeaseID(id), true
}

func (ck *ClusterKit) saveIncarnation(id clientv3.LeaseID) {
	if err := os.MkdirAll(ck.opts.DataDir, 0o700); err != nil {
		ck.log.Warn("cannot save incarnation; a restart within LeaseTTL will wait for the old lease", zapErr(err))
		return
	}
	tmp := ck.incarnationPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(int64(id), 10)), 0o600); err == nil {
		err = os.Rename(tmp, ck.incarnationPath())
		if err == nil {
			return
		}
	}
	ck.log.Warn("cannot save incarnation; a restart within LeaseTTL will wait for the old lease")
}

// membershipLoop campaigns for leadership while the membership lasts, and
// registers again (a new incarnation, reported as a rejoin) after a loss,
// unless an admin removed this node.
func (rt *runtime) membershipLoop() {
	defer rt.wg.Done()
	ck := rt.ck
	for {
		reg := ck.reg.Load()
		lctx, cancel := context.WithCancel(rt.ctx)
		var lwg sync.WaitGroup
		lwg.Add(1)
		go func() { defer lwg.Done(); rt.campaignLoop(lctx, reg) }()
		select {
		case <-rt.ctx.Done():
		case <-reg.Done():
			if !rt.leaving.Load() {
				ck.metrics.keepAliveFailures.Inc()
			}
		}
		cancel()
		lwg.Wait()
		if rt.ctx.Err() != nil {
			return
		}
		rt.mu.Lock()
		removed := rt.removed
		rt.mu.Unlock()
		if rt.leaving.Load() {
			return
		}
		if removed || rt.wasRemoved() {
			ck.log.Warn("removed from the cluster by an admin; not registering again", zapErr(reg.Err()))
			return
		}
		ck.log.Warn("membership lost; registering again", zapErr(reg.Err()))
		delay := 100 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(rt.ctx, ck.opts.LeaseTTL+2*requestTimeout)
			err := rt.register(ctx)
			cancel()
			if err == nil {
				if rt.leaving.Load() {
					return // teardown closes the new registration
				}
				break
			}
			ck.log.Warn("register again failed", zapErr(err))
			select {
			case <-rt.ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
		}
	}
}

// wasRemoved reports whether the last member record seen for this node
// said an admin removed it.
func (rt *runtime) wasRemoved() bool {
	removed, gone := false, false
	deadline := time.Now().Add(2 * time.Second)
	for {
		ch := rt.tracker.waitApplied()
		rt.tracker.read(func(v *view) {
			_, member := v.members[rt.ck.opts.NodeID]
			gone = !member
			if d, ok := v.departed[rt.ck.opts.NodeID]; ok && d.Reason == LeaveRemovedByAdmin {
				removed = true
			}
		})
		// The lease can report the delete before the watch delivers it.
		if gone || time.Now().After(deadline) {
			break
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-rt.ctx.Done():
			return false
		}
	}
	if removed {
		rt.mu.Lock()
		rt.removed = true
		rt.mu.Unlock()
	}
	return removed
}

// campaignLoop campaigns on a session bound to the membership lease, so
// that leadership ends with membership, and leads while it wins.
func (rt *runtime) campaignLoop(ctx context.Context, reg *leases.Registration) {
	ck := rt.ck
	delay := 50 * time.Millisecond
	for ctx.Err() == nil && !rt.leaving.Load() {
		s, err := concurrency.NewSession(ck.cli, concurrency.WithLease(reg.LeaseID()), concurrency.WithContext(ctx))
		if err != nil {
			ck.metrics.etcdErrors.WithLabelValues("session").Inc()
			if !sleepCtx(ctx, delay) {
				return
			}
			delay = min(2*delay, 2*time.Second)
			continue
		}
		l, err := election.Campaign(ctx, s, ck.keys.leaderPrefix(), ck.opts.NodeID)
		if err != nil {
			s.Orphan()
			if ctx.Err() == nil {
				ck.log.Warn("campaign failed", zapErr(err))
				if !sleepCtx(ctx, delay) {
					return
				}
				delay = min(2*delay, 2*time.Second)
			}
			continue
		}
		delay = 50 * time.Millisecond
		rt.mu.Lock()
		rt.leadership = l
		rt.mu.Unlock()
		ck.isLeader.Store(true)
		ck.metrics.isLeader.Set(1)
		ck.log.Info("became leader", zap.Int64("token", l.Token()))
		rt.lead(l)
		ck.isLeader.Store(false)
		ck.metrics.isLeader.Set(0)
		rt.mu.Lock()
		rt.leadership = nil
		rt.mu.Unlock()
		l.Close()
		s.Orphan() // the lease is the membership's: never revoke it here
		ck.log.Info("leadership ended")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// lead reconciles the assignment while l holds: after every change of the
// view (membership changes debounced), it plans and writes the next map in
// one Txn fenced on the leadership.
func (rt *runtime) lead(l *election.Leadership) {
	ck := rt.ck
	t := rt.tracker
	lctx := l.Context()
	var (
		lastMemberRev int64 = -1
		firstChange   time.Time
		lastChange    time.Time
		waitRev       int64 // after a write: wait until the view has it
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var in reconcileInput
		var viewRev, memberRev, assignRev int64
		needPlan := false
		t.read(func(v *view) {
			in = v.reconcileInput(rt.cfg, time.Now())
			viewRev, memberRev, assignRev = v.rev, v.memberRev, v.assignRev
			needPlan = v.assign == nil || !slices.Equal(v.assign.Planned, plannedOf(v.members))
		})
		wait := time.Duration(0)
		now := time.Now()
		if memberRev != lastMemberRev {
			if lastMemberRev != -1 || needPlan {
				if firstChange.IsZero() {
					firstChange = now
				}
				lastChange = now
			}
			lastMemberRev = memberRev
		}
		if needPlan && !firstChange.IsZero() {
			quietLeft := debounceQuiet - now.Sub(lastChange)
			maxLeft := debounceMax - now.Sub(firstChange)
			wait = max(0, min(quietLeft, maxLeft))
		}
		if viewRev < waitRev {
			wait = time.Hour // until the view catches up
		} else if wait == 0 {
			firstChange = time.Time{}
			in.now = time.Now()
			out, err := reconcile(in)
			if err != nil {
				ck.log.Error("reconcile failed", zapErr(err))
				wait = time.Second
			} else if !out.empty() {
				rev, err := rt.write(l, out, assignRev)
				switch {
				case errors.Is(err, election.ErrNotLeader) || lctx.Err() != nil:
					return
				case err != nil:
					ck.log.Warn("leader write failed", zapErr(err))
					ck.metrics.etcdErrors.WithLabelValues("leader_txn").Inc()
					wait = 100 * time.Millisecond
				case rev == 0:
					wait = time.Hour // the view is behind etcd: wait for it
				default:
					waitRev = rev
					continue
				}
			} else {
				wait = time.Hour
			}
		}
		changed := t.waitApplied()
		timer.Reset(wait)
		select {
		case <-lctx.Done():
			return
		case <-changed:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func plannedOf(members map[string]memberRecord) []plannedNode {
	ids := slices.Sorted(maps.Keys(members))
	out := make([]plannedNode, len(ids))
	for i, id := range ids {
		m := members[id]
		out[i] = plannedNode{ID: id, Zone: m.Zone, Weight: m.Weight, Incarnation: m.Incarnation}
	}
	return out
}

// write applies out in one Txn fenced on the leadership and on the
// assignment's mod revision. It returns the new revision, or 0 if the
// assignment changed meanwhile (the view is stale).
func (rt *runtime) write(l *election.Leadership, out reconcileOutput, assignRev int64) (int64, error) {
	ck := rt.ck
	var ops []clientv3.Op
	if out.assign != nil {
		b, err := out.assign.marshal()
		if err != nil {
			return 0, err
		}
		if len(b) > maxAssignmentBytes {
			return 0, fmt.Errorf("clusterkit: assignment of %d bytes exceeds %d", len(b), maxAssignmentBytes)
		}
		ops = append(ops, clientv3.OpPut(ck.keys.assignment(), string(b)))
	}
	if out.rebalance != nil {
		b, err := json.Marshal(out.rebalance)
		if err != nil {
			return 0, err
		}
		ops = append(ops, clientv3.OpPut(ck.keys.rebalance(), string(b)))
	}
	for _, id := range slices.Sorted(maps.Keys(out.history)) {
		b, err := json.Marshal(out.history[id])
		if err != nil {
			return 0, err
		}
		ops = append(ops, clientv3.OpPut(ck.keys.history(id), string(b)))
	}
	for _, id := range out.forget {
		ops = append(ops, clientv3.OpDelete(ck.keys.history(id)))
	}
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(ck.keys.assignment()), "=", assignRev)}
	resp, err := l.Txn(rt.ctx, conds, ops...)
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, nil
	}
	if out.assign != nil {
		ck.log.Debug("assignment written", zap.Int64("version", out.assign.Version), zap.Int64("revision", resp.Header.Revision))
	}
	return resp.Header.Revision, nil
}

// syncWatchStats adds the watcher's re-reads since the last call to the
// resync counter (a re-read that found nothing new delivers no batch).
func (rt *runtime) syncWatchStats() {
	w := rt.watch.Load()
	if w == nil {
		return
	}
	n := w.Stats().Resyncs
	if old := rt.resyncsSeen.Swap(n); n > old {
		rt.ck.metrics.watchResyncs.Add(float64(n - old))
	}
}

// markReady records that this node holds partition p's data (incoming
// since version since); the ready writer publishes it.
func (rt *runtime) markReady(p int, since int64) {
	rt.mu.Lock()
	rt.readySet[p] = since
	rt.mu.Unlock()
	rt.ck.log.Info("partition ready", zap.String("partition", PartitionID(p)), zap.Int64("since", since))
	rt.wakeReady()
}

// keepReady drops ready entries that are no longer incoming.
func (rt *runtime) keepReady(want map[int]int64) {
	rt.mu.Lock()
	changed := false
	for p, since := range rt.readySet {
		if want[p] != since {
			delete(rt.readySet, p)
			changed = true
		}
	}
	rt.mu.Unlock()
	if changed {
		rt.wakeReady()
	}
}

func (rt *runtime) wakeReady() {
	select {
	case rt.readyWake <- struct{}{}:
	default:
	}
}

func (rt *runtime) failingHandoff(p int, failing bool) {
	rt.mu.Lock()
	if failing {
		rt.failing[p] = true
	} else {
		delete(rt.failing, p)
	}
	rt.mu.Unlock()
}

// readyWriter publishes this node's ready record (bound to its lease),
// coalescing bursts of handoff completions into one write.
func (rt *runtime) readyWriter() {
	defer rt.wg.Done()
	ck := rt.ck
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-rt.readyWake:
		}
		for {
			rt.mu.Lock()
			want := maps.Clone(rt.readySet)
			written := rt.readyWritten
			rt.mu.Unlock()
			if maps.Equal(want, written) && written != nil {
				break
			}
			reg := ck.reg.Load()
			if reg == nil {
				break
			}
			ctx, cancel := context.WithTimeout(rt.ctx, requestTimeout)
			var err error
			if len(want) == 0 {
				_, err = ck.cli.Delete(ctx, ck.keys.ready(ck.opts.NodeID))
			} else {
				var b []byte
				if b, err = readyRecord(want).marshal(); err == nil {
					_, err = ck.cli.Put(ctx, ck.keys.ready(ck.opts.NodeID), string(b), clientv3.WithLease(reg.LeaseID()))
				}
			}
			cancel()
			if err != nil {
				if rt.ctx.Err() != nil {
					return
				}
				ck.metrics.etcdErrors.WithLabelValues("ready").Inc()
				ck.log.Warn("write ready record failed; retrying", zapErr(err))
				if !sleepCtx(rt.ctx, 200*time.Millisecond) {
					return
				}
				continue
			}
			if ck.reg.Load() != reg {
				continue // written on a lease that was replaced meanwhile: write again
			}
			rt.mu.Lock()
			rt.readyWritten = want
			if want == nil {
				rt.readyWritten = map[int]int64{}
			}
			rt.mu.Unlock()
		}
	}
}
