package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/election"
	"github.com/clusterkit-go/clusterkit/embedetcd"
	"github.com/clusterkit-go/clusterkit/leases"
	"github.com/clusterkit-go/clusterkit/watcher"
)

// Timing of the leader and of etcd requests.
const (
	// requestTimeout bounds every single etcd request.
	requestTimeout = 5 * time.Second
	// maxGoodbye bounds a graceful leave whose context has no deadline.
	maxGoodbye = 10 * time.Second
	// closeGrace is how long teardown lets the goroutines end with the
	// etcd client still open (a cancelled candidate deletes its key).
	closeGrace = time.Second
	// version is written in member records.
	version = "0.1.0"
)

// run is one life of a node, from Start to Stop or Halt: the etcd
// connection, the watch, the membership, the leadership and every
// goroutine. A ClusterKit makes one run per Start; a stopped run is never
// restarted.
//
// Goroutine ownership: ctx is the run's root context and wg its only
// WaitGroup. Every goroutine the run starts (HTTP server, follower,
// membership loop, ready writer, health loop, dispatcher, etcd join) is
// started with wg.Go and ends when ctx is cancelled; every context the run
// uses derives from ctx. teardown cancels ctx and waits for wg. The
// libraries' own goroutines (watcher, lease keep-alive, leadership
// monitor, embedded etcd) end through their Close, Abandon or Stop, which
// teardown calls.
type run struct {
	ck     *ClusterKit
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Set by start before the run is published (ck.active) or any
	// goroutine that reads them starts; read-only afterwards.
	cli      *clientv3.Client
	eps      *endpointGuard // cli's endpoint list: every SetEndpoints and Dial (setClient)
	conns    *connSet       // cli's TCP connections (newClient); nil when gRPC dials them
	tls      *nodeTLS       // secure embedded mode: this node's certificate and secret
	httpAddr string         // the bound HTTP address
	http     *http.Server
	cfg      clusterConfig
	follower *follower
	notifier *notifier

	watch  atomic.Pointer[watcher.Watcher]
	member atomic.Pointer[embedetcd.Member] // nil in external mode or as a plain client
	reg    atomic.Pointer[leases.Registration]
	ready  *readyState
	// records is what the ready writer knows of this node's own records;
	// only that goroutine touches it (writeOnLease).
	records ownRecords
	// readyCache holds the other nodes' ready records decoded for the
	// planner (leader rounds, previews); guarded by its own lock.
	readyCache readyCache

	joinMu sync.Mutex
	join   *etcdJoin // the last background etcd join (nil: none); guarded by joinMu

	mu         sync.Mutex
	leadership *election.Leadership
	record     memberRecord // this node's member record
	removed    bool         // an admin removed this node: do not come back
	// wantHealthy is the application probe's verdict; publishedHealthy is
	// what this node's member record says.
	wantHealthy      bool
	publishedHealthy bool

	leaving  atomic.Bool // teardown began: do not campaign or register again
	etcdLeft atomic.Bool // this node's etcd member was removed by its leave
	// reregisteredAt is when this node last registered again after losing
	// its lease (unix nanoseconds; 0: never): as leader it then gives the
	// others as long to come back (see leader.go).
	reregisteredAt atomic.Int64
	resyncsSeen    atomic.Int64 // watcher re-reads already counted
	coalescedSeen  atomic.Int64 // watcher coalesced batches already counted

	healthMu sync.Mutex  // orders health evaluations and their events
	health   HealthState // last status reported to OnClusterHealthChange; guarded by healthMu
	// etcdRoles maps node IDs to their etcd member's role (voter,
	// learner), as the upkeep loop last listed them; nil until then.
	etcdRoles atomic.Pointer[map[string]string]
	// healthStuck is the stuck handoffs last reported; guarded by healthMu.
	healthStuck int
	// certKick makes the certificate renewal loop renew at once (tests;
	// buffered, a send never blocks the sender for long).
	certKick chan struct{}
}

// setClient makes cli the run's etcd client (start only, before the run
// is published).
func (r *run) setClient(cli *clientv3.Client) {
	eps := slices.Sorted(slices.Values(cli.Endpoints()))
	r.cli, r.eps = cli, &endpointGuard{cli: cli, conns: r.conns, want: eps, used: eps}
}

func newRun(ck *ClusterKit) *run {
	r := &run{ck: ck, wantHealthy: true, ready: newReadyState(), certKick: make(chan struct{}, 1)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// advertiseAddr is the address other nodes reach this node at.
func (r *run) advertiseAddr() string { return advertiseAddr(&r.ck.opts, r.httpAddr) }

// teardown undoes start, as a short list of ordered steps. With graceful
// it leaves first (resign, mark the member leaving, revoke the lease,
// leave etcd); without, the lease is abandoned to expire. ctx bounds the
// goodbye (see goodbyeCtx), not the local clean-up.
func (r *run) teardown(ctx context.Context, graceful bool) error {
	ctx, cancel := goodbyeCtx(ctx)
	defer cancel()
	r.leaving.Store(true)
	r.stopEtcdJoin()
	reg := r.reg.Load()
	var errs []error
	if graceful {
		errs = append(errs, r.leaveCluster(ctx, reg))
		if ctx.Err() == nil {
			r.leaveEtcd(ctx)
		}
	} else if reg != nil {
		reg.Abandon()
	}
	r.stopServing()
	r.waitGoroutines()
	r.endLateRegistration(ctx, reg, graceful)
	errs = append(errs, r.stopEmbeddedEtcd())
	r.ck.setLeader(false)
	return errors.Join(errs...)
}

// leaveCluster hands leadership over, marks the member leaving (so the
// others report graceful_shutdown) and revokes the lease. A step that etcd
// cannot take (unreachable, or without quorum because every node is
// stopping at once) degrades to what a crash would do — the lease and the
// leader key expire after the TTL — and is logged, not returned. Only the
// caller's ctx ending first is an error.
func (r *run) leaveCluster(ctx context.Context, reg *leases.Registration) error {
	if reg == nil {
		return nil
	}
	r.mu.Lock()
	r.record.State = memberLeaving // a concurrent health update keeps it
	rec := r.record
	l := r.leadership
	r.mu.Unlock()
	// Hand leadership over first: the next leader can then plan this
	// node's departure as soon as the lease is revoked.
	if l != nil {
		r.goodbyeStep(ctx, "resign", l.Resign(ctx))
	}
	if ctx.Err() == nil {
		r.goodbyeStep(ctx, "mark leaving", updateRecord(ctx, reg, rec))
	}
	if ctx.Err() != nil {
		reg.Abandon()
		return fmt.Errorf("clusterkit: leave cut short, the lease is left to expire: %w", ctx.Err())
	}
	if err := reg.Close(ctx); !errors.Is(err, leases.ErrClosed) {
		r.goodbyeStep(ctx, "revoke lease", err)
	}
	return nil
}

// goodbyeStep logs a step of the graceful leave that etcd did not take.
func (r *run) goodbyeStep(ctx context.Context, step string, err error) {
	if err != nil && ctx.Err() == nil {
		r.ck.log.Warn("leave: "+step+" failed; the lease expires after its TTL instead", zapErr(err))
	}
}

// stopServing cancels the root context, shuts the HTTP server down
// (requests still running after closeGrace are cut) and closes the watch.
func (r *run) stopServing() {
	r.cancel()
	if r.http != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), closeGrace)
		if r.http.Shutdown(sctx) != nil {
			r.http.Close()
		}
		cancel()
	}
	if w := r.watch.Load(); w != nil {
		w.Close()
	}
}

// waitGoroutines waits for every goroutine of the run: closeGrace with the
// client open, then closes the client (etcd's Campaign, once cancelled,
// resigns under the client's own context and would otherwise wait for an
// unreachable etcd forever) and waits for the rest. Handlers that ignore
// their context delay it.
func (r *run) waitGoroutines() {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeGrace):
	}
	if r.cli != nil {
		r.cli.Close()
	}
	<-done
}

// endLateRegistration ends a registration the membership loop made while
// teardown ran: it must not outlive the run.
func (r *run) endLateRegistration(ctx context.Context, first *leases.Registration, graceful bool) {
	late := r.reg.Load()
	if late == nil || late == first {
		return
	}
	if graceful {
		late.Close(ctx)
	} else {
		late.Abandon()
	}
}

// stopEmbeddedEtcd stops this node's etcd member, if it runs one, and
// sets its data aside if the leave removed it from the cluster.
func (r *run) stopEmbeddedEtcd() error {
	m := r.member.Load()
	if m == nil {
		return nil
	}
	var errs []error
	if err := m.Stop(); err != nil && !errors.Is(m.Err(), embedetcd.ErrRemoved) && !r.etcdLeft.Load() {
		errs = append(errs, fmt.Errorf("clusterkit: stop embedded etcd: %w", err))
	}
	if r.etcdLeft.Load() {
		if cfg, err := r.embedConfig(); err == nil {
			if err := embedetcd.SetAside(cfg); err != nil {
				errs = append(errs, fmt.Errorf("clusterkit: set aside the removed member's data: %w", err))
			}
		}
	}
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
