package leases_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/tcpproxy"
	"github.com/clusterkit-go/clusterkit/leases"
)

func TestRegisterWritesKeyBoundToLease(t *testing.T) {
	_, cli := newCluster(t)
	r := mustRegister(t, cli, memberKey, `{"id":"node-1"}`, 2*time.Second)

	value, lease, ok := getKey(t, cli, memberKey)
	if !ok || value != `{"id":"node-1"}` || lease != r.LeaseID() {
		t.Fatalf("key = (%q, lease %x, present %v), want (%q, lease %x, true)", value, lease, ok, `{"id":"node-1"}`, r.LeaseID())
	}
	ttl, err := cli.TimeToLive(ctxT(t), r.LeaseID())
	if err != nil {
		t.Fatalf("TimeToLive: %v", err)
	}
	if ttl.GrantedTTL != 2 {
		t.Errorf("granted TTL = %d s, want 2 s", ttl.GrantedTTL)
	}
	if r.Key() != memberKey || r.TTL() != 2*time.Second {
		t.Errorf("Key, TTL = %q, %s; want %q, 2s", r.Key(), r.TTL(), memberKey)
	}
	select {
	case <-r.Done():
		t.Fatalf("Done closed right after Register: %v", r.Err())
	default:
	}
	if r.Err() != nil {
		t.Errorf("Err while live = %v, want nil", r.Err())
	}
	// IsHolder fences a write of the caller's own.
	resp, err := cli.Txn(ctxT(t)).If(r.IsHolder()).Then(clientv3.OpPut("/fenced", "x")).Commit()
	if err != nil || !resp.Succeeded {
		t.Errorf("Txn guarded by IsHolder: succeeded %v, err %v; want true, nil", resp != nil && resp.Succeeded, err)
	}
}

func TestRegisterKeepsLeaseAliveOverSeveralTTLs(t *testing.T) {
	_, cli := newCluster(t)
	const ttl = 2 * time.Second
	r := mustRegister(t, cli, memberKey, "v", ttl)
	first := r.LastRenewal()

	time.Sleep(3 * ttl)

	select {
	case <-r.Done():
		t.Fatalf("Done closed while etcd is up: %v", r.Err())
	default:
	}
	if _, lease, ok := getKey(t, cli, memberKey); !ok || lease != r.LeaseID() {
		t.Fatalf("after 3 TTLs key present %v with lease %x, want present with %x", ok, lease, r.LeaseID())
	}
	if !r.LastRenewal().After(first) {
		t.Errorf("LastRenewal did not advance: %v", r.LastRenewal())
	}
	t.Logf("last renewal %s ago", time.Since(r.LastRenewal()).Round(time.Millisecond))
}

func TestRegisterRejectsBadInput(t *testing.T) {
	_, cli := newCluster(t)
	tests := []struct {
		name string
		cli  *clientv3.Client
		key  string
		ttl  time.Duration
		opts []leases.Option
		want error
		msg  string
	}{
		{"nil client", nil, memberKey, 2 * time.Second, nil, leases.ErrInvalidArgument, "nil etcd client"},
		{"empty key", cli, "", 2 * time.Second, nil, leases.ErrInvalidArgument, "empty key"},
		{"zero ttl", cli, memberKey, 0, nil, leases.ErrInvalidTTL, "ttl 0s is below the minimum of 1s"},
		{"negative ttl", cli, memberKey, -time.Second, nil, leases.ErrInvalidTTL, "ttl -1s is below the minimum of 1s"},
		{"sub-second ttl", cli, memberKey, 500 * time.Millisecond, nil, leases.ErrInvalidTTL, "ttl 500ms is below the minimum of 1s"},
		{"fractional ttl", cli, memberKey, 1500 * time.Millisecond, nil, leases.ErrInvalidTTL, "ttl 1.5s is not a whole number of seconds"},
		{"ttl above etcd's maximum", cli, memberKey, 9_000_000_001 * time.Second, nil, leases.ErrInvalidTTL, "above etcd's maximum"},
		{"zero request timeout", cli, memberKey, 2 * time.Second, []leases.Option{leases.WithRequestTimeout(0)}, leases.ErrInvalidArgument, "request timeout 0s must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := leases.Register(ctxT(t), tt.cli, tt.key, []byte("v"), tt.ttl, tt.opts...)
			if r != nil {
				r.Close(context.Background())
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.want, tt.msg)
			}
			if ids := leaseIDs(t, cli); len(ids) != 0 {
				t.Errorf("leases left behind: %x", ids)
			}
			if _, _, ok := getKey(t, cli, memberKey); ok {
				t.Errorf("key %q written despite the error", memberKey)
			}
		})
	}
}

// etcd silently raises a TTL below its minimum (1.5 × election timeout); with
// etcd's default ticks (election 1 s) the minimum is 2 s.
func TestRegisterRejectsTTLBelowServerMinimum(t *testing.T) {
	e, endpoint, err := startEtcd(t.TempDir(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	cli, err := newClient(endpoint)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })

	_, err = leases.Register(ctxT(t), cli, memberKey, []byte("v"), time.Second)
	const msg = "ttl 1s is below the etcd server's minimum lease TTL of 2s"
	if !errors.Is(err, leases.ErrInvalidTTL) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("Register(ttl 1s) err = %v, want ErrInvalidTTL mentioning %q", err, msg)
	}
	if ids := leaseIDs(t, cli); len(ids) != 0 {
		t.Errorf("granted lease not revoked: %x", ids)
	}
	if _, _, ok := getKey(t, cli, memberKey); ok {
		t.Errorf("key written despite the error")
	}
	r := mustRegister(t, cli, memberKey, "v", 2*time.Second)
	if err := r.Close(ctxT(t)); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// A simulated crash: the key is deleted by etcd within TTL + 1 s. The test
// also reports the expiry detection delay: last acknowledged keep-alive →
// an observer's watch sees the delete.
func TestAbandonedKeyExpiresWithinTTLPlusOneSecond(t *testing.T) {
	_, cli := newCluster(t)
	for _, ttl := range []time.Duration{time.Second, 2 * time.Second} {
		t.Run(ttl.String(), func(t *testing.T) {
			const n = 5
			var (
				regs    []*leases.Registration
				watches []<-chan event
			)
			for i := range n {
				key := memberKey + "-" + ttl.String() + "-" + string(rune('a'+i))
				watches = append(watches, watchKey(t, cli, key))
				regs = append(regs, mustRegister(t, cli, key, "v", ttl))
				nextEvent(t, watches[i], timeout) // the create
				time.Sleep(ttl / 7)               // spread the keep-alive phases
			}
			// Let a few keep-alives happen, then crash every registration.
			time.Sleep(ttl)
			var delays []time.Duration
			for i, r := range regs {
				r.Abandon()
				crashed, last := time.Now(), r.LastRenewal()
				select {
				case <-r.Done():
				default:
					t.Fatalf("Done open after Abandon")
				}
				if r.Err() != nil {
					t.Errorf("Err after Abandon = %v, want nil", r.Err())
				}
				ev := nextEvent(t, watches[i], 10*ttl+timeout)
				if ev.typ != mvccpb.DELETE {
					t.Fatalf("event %v, want DELETE", ev.typ)
				}
				if got, limit := ev.at.Sub(crashed), ttl+time.Second; got > limit {
					t.Errorf("delete seen %s after the crash, want within TTL + 1 s = %s", got, limit)
				}
				delays = append(delays, ev.at.Sub(last))
				if err := r.Close(ctxT(t)); err != nil {
					t.Errorf("Close after expiry: %v", err)
				}
			}
			slices.Sort(delays)
			t.Logf("TTL %s: last keep-alive → delete seen: min %s, median %s, max %s (n=%d)",
				ttl, delays[0].Round(time.Millisecond), delays[n/2].Round(time.Millisecond), delays[n-1].Round(time.Millisecond), n)
		})
	}
}

func TestCloseDeletesKeyAtOnce(t *testing.T) {
	_, cli := newCluster(t)
	watch := watchKey(t, cli, memberKey)
	r := mustRegister(t, cli, memberKey, "v", 5*time.Second)
	nextEvent(t, watch, timeout)

	start := time.Now()
	if err := r.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closeTook := time.Since(start)
	if _, _, ok := getKey(t, cli, memberKey); ok {
		t.Fatalf("key still present right after Close")
	}
	ev := nextEvent(t, watch, timeout)
	if ev.typ != mvccpb.DELETE {
		t.Fatalf("event %v, want DELETE", ev.typ)
	}
	t.Logf("Close took %s; watcher saw the delete %s after Close was called", closeTook.Round(time.Microsecond), ev.at.Sub(start).Round(time.Microsecond))
	if leaseAlive(t, cli, r.LeaseID()) {
		t.Errorf("lease %x still alive after Close", r.LeaseID())
	}
	select {
	case <-r.Done():
	default:
		t.Fatalf("Done open after Close")
	}
	if r.Err() != nil {
		t.Errorf("Err after Close = %v, want nil", r.Err())
	}
	if err := r.Close(ctxT(t)); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := r.Update(ctxT(t), []byte("w")); !errors.Is(err, leases.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if _, _, ok := getKey(t, cli, memberKey); ok {
		t.Errorf("Update after Close recreated the key")
	}
}

func TestCloseWithDoneContextStillRevokes(t *testing.T) {
	_, cli := newCluster(t)
	r := mustRegister(t, cli, memberKey, "v", 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close(cancelled ctx) = %v, want nil", err)
	}
	if _, _, ok := getKey(t, cli, memberKey); ok {
		t.Errorf("key still present after Close with a cancelled context")
	}
}

func TestCloseAfterAbandonRevokes(t *testing.T) {
	_, cli := newCluster(t)
	r := mustRegister(t, cli, memberKey, "v", 5*time.Second)
	r.Abandon()
	r.Abandon() // idempotent
	if _, _, ok := getKey(t, cli, memberKey); !ok {
		t.Fatalf("key gone right after Abandon, want it to stay until the lease expires")
	}
	if err := r.Close(ctxT(t)); err != nil {
		t.Fatalf("Close after Abandon: %v", err)
	}
	if _, _, ok := getKey(t, cli, memberKey); ok {
		t.Errorf("key still present after Close")
	}
}

func TestLiveDuplicateIsRefused(t *testing.T) {
	tests := []struct {
		name    string
		holder  time.Duration // the live holder's TTL
		opts    []leases.Option
		message string
	}{
		// With a 5 s TTL the holder's remaining TTL (whole seconds) visibly
		// grows at its keep-alives, so the duplicate is refused early.
		{"renewal seen", 5 * time.Second, nil, "renewed while we waited"},
		// With a 2 s TTL renewals are invisible at one-second resolution; the
		// refusal comes after its remaining TTL plus the margin.
		{"still held after the wait", 2 * time.Second, nil, ""},
		{"wrong proof", 5 * time.Second, []leases.Option{leases.WithPreviousLease(0x1234)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cli := newCluster(t)
			a := mustRegister(t, cli, memberKey, "a", tt.holder)

			start := time.Now()
			b, err := leases.Register(ctxT(t), cli, memberKey, []byte("b"), 2*time.Second, tt.opts...)
			took := time.Since(start)
			if b != nil {
				b.Close(context.Background())
			}
			if !errors.Is(err, leases.ErrKeyInUse) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("second Register err = %v, want ErrKeyInUse mentioning %q", err, tt.message)
			}
			t.Logf("holder TTL %s: duplicate refused after %s: %v", tt.holder, took.Round(time.Millisecond), err)
			if limit := tt.holder + 2*time.Second + 5*time.Second; took > limit {
				t.Errorf("refusal took %s, want at most the holder's TTL + margin (loose bound %s)", took, limit)
			}
			if value, lease, ok := getKey(t, cli, memberKey); !ok || value != "a" || lease != a.LeaseID() {
				t.Errorf("key = (%q, %x, %v), want the holder's (%q, %x, true)", value, lease, ok, "a", a.LeaseID())
			}
			if ids := leaseIDs(t, cli); len(ids) != 1 || ids[0] != a.LeaseID() {
				t.Errorf("leases = %x, want only the holder's %x", ids, a.LeaseID())
			}
			select {
			case <-a.Done():
				t.Errorf("holder's Done closed: %v", a.Err())
			default:
			}
		})
	}
}

func TestKeyWithoutLeaseIsRefused(t *testing.T) {
	_, cli := newCluster(t)
	if _, err := cli.Put(ctxT(t), memberKey, "static"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	_, err := leases.Register(ctxT(t), cli, memberKey, []byte("v"), 2*time.Second)
	if !errors.Is(err, leases.ErrKeyInUse) || !strings.Contains(err.Error(), "without a lease") {
		t.Fatalf("err = %v, want ErrKeyInUse mentioning %q", err, "without a lease")
	}
	if value, _, _ := getKey(t, cli, memberKey); value != "static" {
		t.Errorf("value = %q, want %q (never overwritten)", value, "static")
	}
	if ids := leaseIDs(t, cli); len(ids) != 0 {
		t.Errorf("leases left behind: %x", ids)
	}
}

func TestRegisterWaitEndsWithContext(t *testing.T) {
	_, cli := newCluster(t)
	a := mustRegister(t, cli, memberKey, "a", 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := leases.Register(ctx, cli, memberKey, []byte("b"), 2*time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if ids := leaseIDs(t, cli); len(ids) != 1 || ids[0] != a.LeaseID() {
		t.Errorf("leases = %x, want only the holder's %x", ids, a.LeaseID())
	}
}

// A restarted node that proves it held the key takes it over at once: no
// wait for the old lease, no gap in the key (a watcher sees one put).
func TestRestartWithProofTakesOverAtOnce(t *testing.T) {
	_, cli := newCluster(t)
	const ttl = 5 * time.Second
	old := mustRegister(t, cli, memberKey, "incarnation 1", ttl)
	prev := old.LeaseID() // what the node persisted
	old.Abandon()         // crash
	watch := watchKey(t, cli, memberKey)

	start := time.Now()
	r := mustRegister(t, cli, memberKey, "incarnation 2", ttl, leases.WithPreviousLease(prev))
	took := time.Since(start)
	t.Logf("takeover with proof took %s (old lease TTL %s)", took.Round(time.Microsecond), ttl)
	if took >= ttl {
		t.Errorf("takeover took %s, want well under a full TTL (%s)", took, ttl)
	}
	if value, lease, ok := getKey(t, cli, memberKey); !ok || value != "incarnation 2" || lease != r.LeaseID() {
		t.Errorf("key = (%q, %x, %v), want (%q, %x, true)", value, lease, ok, "incarnation 2", r.LeaseID())
	}
	if leaseAlive(t, cli, prev) {
		t.Errorf("previous lease %x still alive, want it revoked", prev)
	}
	ev := nextEvent(t, watch, timeout)
	if ev.typ != mvccpb.PUT || ev.lease != r.LeaseID() {
		t.Errorf("watcher saw %v with lease %x, want PUT with %x", ev.typ, ev.lease, r.LeaseID())
	}
	select {
	case ev := <-watch:
		t.Errorf("unexpected second event %v (a gap in the key?)", ev.typ)
	case <-time.After(200 * time.Millisecond):
	}
}

// A takeover while the old Registration still runs (for example two
// processes that share a persisted token) ends the old one.
func TestTakeoverEndsOldRegistration(t *testing.T) {
	_, cli := newCluster(t)
	old := mustRegister(t, cli, memberKey, "old", 5*time.Second)
	r := mustRegister(t, cli, memberKey, "new", 5*time.Second, leases.WithPreviousLease(old.LeaseID()))

	waitDone(t, old, timeout)
	if err := old.Err(); !errors.Is(err, leases.ErrKeyReplaced) {
		t.Fatalf("old Err = %v, want ErrKeyReplaced", err)
	}
	if err := old.Update(ctxT(t), []byte("old again")); !errors.Is(err, leases.ErrKeyReplaced) {
		t.Errorf("old Update = %v, want ErrKeyReplaced", err)
	}
	if value, lease, ok := getKey(t, cli, memberKey); !ok || value != "new" || lease != r.LeaseID() {
		t.Errorf("key = (%q, %x, %v), want (%q, %x, true)", value, lease, ok, "new", r.LeaseID())
	}
	select {
	case <-r.Done():
		t.Errorf("new Done closed: %v", r.Err())
	default:
	}
}

// Without proof, a restart waits for the crashed incarnation's lease to
// expire (bounded by its remaining TTL), then registers.
func TestRestartWithoutProofWaitsForExpiry(t *testing.T) {
	_, cli := newCluster(t)
	const ttl = 2 * time.Second
	old := mustRegister(t, cli, memberKey, "incarnation 1", ttl)
	old.Abandon()
	crashed, last := time.Now(), old.LastRenewal()

	r := mustRegister(t, cli, memberKey, "incarnation 2", ttl)
	t.Logf("restart without proof registered %s after the crash, %s after the old lease's last keep-alive (TTL %s)",
		time.Since(crashed).Round(time.Millisecond), time.Since(last).Round(time.Millisecond), ttl)
	if limit := ttl + 2*time.Second + 5*time.Second; time.Since(crashed) > limit {
		t.Errorf("restart took %s, want at most TTL + margin (loose bound %s)", time.Since(crashed), limit)
	}
	if value, lease, ok := getKey(t, cli, memberKey); !ok || value != "incarnation 2" || lease != r.LeaseID() {
		t.Errorf("key = (%q, %x, %v), want (%q, %x, true)", value, lease, ok, "incarnation 2", r.LeaseID())
	}
}

func TestDeleteBySomeoneElseEndsRegistration(t *testing.T) {
	_, cli := newCluster(t)
	r := mustRegister(t, cli, memberKey, "v", 5*time.Second)
	if _, err := cli.Delete(ctxT(t), memberKey); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	took := waitDone(t, r, timeout)
	t.Logf("Done closed %s after the delete", took.Round(time.Microsecond))
	if err := r.Err(); !errors.Is(err, leases.ErrKeyDeleted) {
		t.Fatalf("Err = %v, want ErrKeyDeleted", err)
	}
	if leaseAlive(t, cli, r.LeaseID()) {
		t.Errorf("lease %x still alive after the key was deleted, want it revoked", r.LeaseID())
	}
	if err := r.Update(ctxT(t), []byte("w")); !errors.Is(err, leases.ErrKeyDeleted) {
		t.Errorf("Update = %v, want ErrKeyDeleted", err)
	}
	if _, _, ok := getKey(t, cli, memberKey); ok {
		t.Errorf("key recreated after the delete")
	}
	if err := r.Close(ctxT(t)); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
}

func TestUpdate(t *testing.T) {
	_, cli := newCluster(t)
	r := mustRegister(t, cli, memberKey, "v1", 5*time.Second)
	before, err := cli.Get(ctxT(t), memberKey)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if err := r.Update(ctxT(t), []byte("v2")); err != nil {
		t.Fatalf("Update: %v", err)
	}
	after, err := cli.Get(ctxT(t), memberKey)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	kv := after.Kvs[0]
	if string(kv.Value) != "v2" || clientv3.LeaseID(kv.Lease) != r.LeaseID() || kv.CreateRevision != before.Kvs[0].CreateRevision {
		t.Errorf("after Update: value %q lease %x create rev %d; want %q, %x, %d", kv.Value, kv.Lease, kv.CreateRevision, "v2", r.LeaseID(), before.Kvs[0].CreateRevision)
	}
	select {
	case <-r.Done():
		t.Fatalf("own Update ended the registration: %v", r.Err())
	case <-time.After(200 * time.Millisecond):
	}

	// Update right after a delete (before or after the watch notices) fails
	// and never recreates the key.
	if _, err := cli.Delete(ctxT(t), memberKey); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := r.Update(ctxT(t), []byte("v3")); !errors.Is(err, leases.ErrKeyDeleted) {
		t.Errorf("Update after delete = %v, want ErrKeyDeleted", err)
	}
	if _, _, ok := getKey(t, cli, memberKey); ok {
		t.Errorf("Update recreated the key")
	}
	waitDone(t, r, timeout)
}

// Losing etcd: the lease can no longer be renewed, so Done closes about a
// TTL after the last acknowledged keep-alive, without waiting for etcd.
func TestLosingEtcdClosesDone(t *testing.T) {
	srv, cli := newCluster(t)
	const ttl = 2 * time.Second
	r := mustRegister(t, cli, memberKey, "v", ttl, leases.WithRequestTimeout(time.Second))
	time.Sleep(ttl / 2)

	stopped := time.Now()
	srv.Stop() // blocks while etcd shuts down (up to ~2 s: gRPC graceful stop)
	stopTook := time.Since(stopped)
	waitDone(t, r, 5*ttl+timeout)
	sinceStop, sinceRenewal := time.Since(stopped), time.Since(r.LastRenewal())
	t.Logf("etcd stopped (Stop took %s): Done closed %s after the stop began, %s after the last acknowledged keep-alive (TTL %s)",
		stopTook.Round(time.Millisecond), sinceStop.Round(time.Millisecond), sinceRenewal.Round(time.Millisecond), ttl)
	if err := r.Err(); !errors.Is(err, leases.ErrLeaseLost) {
		t.Fatalf("Err = %v, want ErrLeaseLost", err)
	}
	if sinceStop > 3*ttl {
		t.Errorf("Done closed %s after etcd stopped, want about a TTL (loose bound %s)", sinceStop, 3*ttl)
	}
	start := time.Now()
	if err := r.Close(ctxT(t)); err != nil {
		t.Errorf("Close after loss = %v, want nil", err)
	}
	// It tries (and fails) to revoke the presumed-expired lease, bounded by
	// the request timeout of 1 s.
	t.Logf("Close after the loss took %s", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %s, want it bounded by the request timeout (1 s; loose bound 5 s)", took)
	}
}

// Cut off from a running etcd: the owner's Done closes no later than etcd
// deletes the key (its expiry estimate starts at the send time of the last
// acknowledged keep-alive).
func TestCutOffFromEtcdClosesDoneBeforeKeyExpires(t *testing.T) {
	srv, observer := newCluster(t)
	proxy := tcpproxy.Start(t, srv.Endpoints()[0])
	cli, err := newClient("http://" + proxy.Addr())
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })

	const ttl = 2 * time.Second
	watch := watchKey(t, observer, memberKey)
	r := mustRegister(t, cli, memberKey, "v", ttl, leases.WithRequestTimeout(time.Second))
	nextEvent(t, watch, timeout)
	time.Sleep(ttl / 2)

	proxy.Cut()
	cut := time.Now()
	waitDone(t, r, 5*ttl+timeout)
	doneAt := time.Now()
	if err := r.Err(); !errors.Is(err, leases.ErrLeaseLost) {
		t.Fatalf("Err = %v, want ErrLeaseLost", err)
	}
	ev := nextEvent(t, watch, 5*ttl+timeout)
	if ev.typ != mvccpb.DELETE {
		t.Fatalf("observer saw %v, want DELETE", ev.typ)
	}
	t.Logf("cut off: Done closed %s after the cut; the observer saw the delete %s after the cut (Done %s earlier)",
		doneAt.Sub(cut).Round(time.Millisecond), ev.at.Sub(cut).Round(time.Millisecond), ev.at.Sub(doneAt).Round(time.Millisecond))
	if doneAt.Sub(cut) > 3*ttl {
		t.Errorf("Done closed %s after the cut, want about a TTL (loose bound %s)", doneAt.Sub(cut), 3*ttl)
	}
	if slack := 500 * time.Millisecond; doneAt.After(ev.at.Add(slack)) {
		t.Errorf("Done closed %s after the key was deleted, want no later (slack %s)", doneAt.Sub(ev.at), slack)
	}
}

// An etcd outage shorter than the TTL does not end the registration, and the
// watch resumes after it (a later delete is still noticed).
func TestEtcdRestartWithinTTLKeepsRegistration(t *testing.T) {
	srv, cli := newCluster(t)
	// Long enough to outlast etcdtest's Stop (up to ~5 s here) + Restart.
	const ttl = 30 * time.Second
	r := mustRegister(t, cli, memberKey, "v", ttl, leases.WithRequestTimeout(time.Second))

	start := time.Now()
	srv.Stop()
	srv.Restart()
	t.Logf("etcd down and back in %s", time.Since(start).Round(time.Millisecond))

	// Wait for a keep-alive after the restart.
	for deadline := time.Now().Add(ttl); !r.LastRenewal().After(start); {
		if time.Now().After(deadline) {
			t.Fatalf("no keep-alive acknowledged within %s of the restart (Err %v)", ttl, r.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-r.Done():
		t.Fatalf("Done closed by a short outage: %v", r.Err())
	default:
	}
	if _, lease, ok := getKey(t, cli, memberKey); !ok || lease != r.LeaseID() {
		t.Fatalf("key present %v with lease %x after the restart, want %x", ok, lease, r.LeaseID())
	}
	if _, err := cli.Delete(ctxT(t), memberKey); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	waitDone(t, r, timeout)
	if err := r.Err(); !errors.Is(err, leases.ErrKeyDeleted) {
		t.Fatalf("Err = %v, want ErrKeyDeleted", err)
	}
}

// An etcd restart renews every lease (the new leader extends them). While a
// restart waits for a crashed incarnation's lease, that must not be taken
// for a keep-alive of a live holder: the wait goes on and then succeeds.
func TestRestartWaitSurvivesEtcdLeaderChange(t *testing.T) {
	srv, cli := newCluster(t)
	const ttl = 5 * time.Second
	old := mustRegister(t, cli, memberKey, "incarnation 1", ttl)
	old.Abandon()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		r   *leases.Registration
		err error
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		r, err := leases.Register(ctx, cli, memberKey, []byte("incarnation 2"), 2*time.Second, leases.WithRequestTimeout(time.Second))
		res <- result{r, err}
	}()
	// Register is waiting now; let the old lease's remaining TTL drop by a
	// few whole seconds so that the renewal on restart is visible.
	time.Sleep(ttl / 2)
	stopAt := time.Now()
	srv.Stop()
	t.Logf("Stop took %s", time.Since(stopAt))
	srv.Restart()
	restarted := time.Since(start)

	got := <-res
	if got.err != nil {
		t.Fatalf("Register across an etcd restart: %v", got.err)
	}
	t.Cleanup(func() { got.r.Close(context.Background()) })
	t.Logf("registered %s after the crash; etcd was back after %s (a new leader renews leases to TTL + election timeout)",
		time.Since(start).Round(time.Millisecond), restarted.Round(time.Millisecond))
	if value, lease, ok := getKey(t, cli, memberKey); !ok || value != "incarnation 2" || lease != got.r.LeaseID() {
		t.Errorf("key = (%q, %x, %v), want (%q, %x, true)", value, lease, ok, "incarnation 2", got.r.LeaseID())
	}
}

// TestLateUpdateDoesNotHideANewerOne: an Update whose request timed out
// can still reach etcd, after the next Update (etcd under load). It must
// not replace the newer value: the owner believes the newer one written
// (a node's health, for example, would stay wrong until it changes again).
func TestLateUpdateDoesNotHideANewerOne(t *testing.T) {
	srv := etcdtest.Start(t)
	late := etcdtest.NewLateWrite(func(key, value []byte) bool { return string(key) == memberKey && string(value) != "v0" })
	cli := srv.Client(t, late.DialOption())
	r := mustRegister(t, cli, memberKey, "v0", 5*time.Second)
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	if err := r.Update(ctx, []byte("v1")); err == nil {
		t.Fatal("the held Update succeeded")
	}
	if err := r.Update(ctxT(t), []byte("v2")); err != nil {
		t.Fatalf("Update after the held one: %v", err)
	}
	if err := <-late.Landed; err != nil {
		t.Logf("the held Update reached etcd: %v", err)
	}
	resp, err := cli.Get(ctxT(t), memberKey)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v2" {
		t.Fatalf("after the held Update reached etcd the key holds %v, want v2", resp.Kvs)
	}
	if err := r.Update(ctxT(t), []byte("v3")); err != nil {
		t.Fatalf("Update after the late write: %v", err)
	}
	if r.Err() != nil {
		t.Fatalf("the registration ended: %v", r.Err())
	}
}
