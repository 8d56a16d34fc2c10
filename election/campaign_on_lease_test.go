package election

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// TestCampaignOnLeaseOrder: candidates lead in the order they queued, each
// after its predecessor resigns, with growing tokens; the one that leads is
// the one Current reports.
func TestCampaignOnLeaseOrder(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	const n = 4
	chs := make([]<-chan result, n)
	for i := range n {
		chs[i] = campaignOnLeaseAsync(t, context.Background(), cli, grantLease(t, cli, 30), fmt.Sprintf("node-%d", i))
		// Queue in a known order.
		waitFor(t, fmt.Sprintf("candidate %d queued", i), func() bool { return countKeys(t, cli) == i+1 })
	}
	var prevToken int64
	for i := range n {
		r := await(t, chs[i], fmt.Sprintf("candidate %d", i))
		if r.err != nil {
			t.Fatalf("candidate %d: %v", i, r.err)
		}
		for j := i + 1; j < n; j++ {
			notYet(t, chs[j], 50*time.Millisecond, fmt.Sprintf("candidate %d while %d leads", j, i))
		}
		if cur := current(t, cli); cur.Key != r.l.Key() || cur.Value != fmt.Sprintf("node-%d", i) || cur.Token != r.l.Token() {
			t.Fatalf("Current() = %+v, want candidate %d (key %s, token %d)", cur, i, r.l.Key(), r.l.Token())
		}
		if r.l.Token() <= prevToken {
			t.Errorf("token %d after %d, want it to grow", r.l.Token(), prevToken)
		}
		prevToken = r.l.Token()
		if err := r.l.Resign(context.Background()); err != nil {
			t.Fatalf("candidate %d: Resign: %v", i, err)
		}
	}
}

// TestCampaignOnLeaseTakeover: the leader's lease is revoked (by someone
// else) or its key deleted: its leadership ends, and the waiting candidate
// leads; Txns fenced on the old term fail.
func TestCampaignOnLeaseTakeover(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, cli *clientv3.Client, lease clientv3.LeaseID, a *Leadership)
	}{
		{"lease revoked", func(t *testing.T, cli *clientv3.Client, lease clientv3.LeaseID, _ *Leadership) { revoke(t, cli, lease) }},
		{"key deleted", func(t *testing.T, cli *clientv3.Client, _ clientv3.LeaseID, a *Leadership) {
			if _, err := cli.Delete(context.Background(), a.Key()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := etcdtest.Start(t)
			cli := srv.Client(t)
			leaseA := grantLease(t, cli, 30)
			a := await(t, campaignOnLeaseAsync(t, context.Background(), cli, leaseA, "a"), "a")
			if a.err != nil {
				t.Fatalf("a: %v", a.err)
			}
			chB := campaignOnLeaseAsync(t, context.Background(), cli, grantLease(t, cli, 30), "b")
			waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })
			notYet(t, chB, 200*time.Millisecond, "b")

			start := time.Now()
			tt.end(t, cli, leaseA, a.l)
			wantCause(t, "a's cause", waitDone(t, a.l, "a"), ErrElectionLost)
			aDone := time.Since(start)
			b := await(t, chB, "b")
			if b.err != nil {
				t.Fatalf("b: %v", b.err)
			}
			t.Logf("%s: a's leadership ended after %v, b leads after %v", tt.name, aDone.Round(time.Microsecond), b.at.Sub(start).Round(time.Microsecond))
			if b.l.Token() <= a.l.Token() {
				t.Errorf("b's token %d <= a's %d", b.l.Token(), a.l.Token())
			}
			if fencedPut(t, cli, a.l.Cmp(), "/clusterkit/test/assignment", "from a") {
				t.Errorf("a Txn fenced on a's term succeeded after b leads")
			}
			if !fencedPut(t, cli, b.l.Cmp(), "/clusterkit/test/assignment", "from b") {
				t.Errorf("b's fenced Txn failed")
			}
		})
	}
}

// TestCampaignOnLeaseKeyVanishesWhileWaiting (etcd #11051): b waits behind
// a, and b's lease is revoked: b's campaign fails with ErrElectionLost at
// once, without waiting for a to go, and never leads.
func TestCampaignOnLeaseKeyVanishesWhileWaiting(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	a := await(t, campaignOnLeaseAsync(t, context.Background(), cli, grantLease(t, cli, 30), "a"), "a")
	if a.err != nil {
		t.Fatalf("a: %v", a.err)
	}
	leaseB := grantLease(t, cli, 30)
	chB := campaignOnLeaseAsync(t, context.Background(), cli, leaseB, "b")
	waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })
	revoke(t, cli, leaseB)
	r := await(t, chB, "b")
	if r.l != nil {
		t.Fatalf("b got a Leadership (key %s) without its key", r.l.Key())
	}
	wantCause(t, "b's campaign", r.err, ErrElectionLost)
	if errors.Is(r.err, ErrLeaseDone) {
		t.Errorf("b's campaign: got %v, want no ErrLeaseDone (no done channel was given)", r.err)
	}
	if err := a.l.Context().Err(); err != nil {
		t.Fatalf("a's leadership ended: %v", context.Cause(a.l.Context()))
	}
	if cur := current(t, cli); cur.Key != a.l.Key() {
		t.Errorf("Current() = %+v, want a", cur)
	}
}

// TestCampaignOnLeaseWithLeaseDone: the done channel ends a campaign and a
// leadership with ErrElectionLost and ErrLeaseDone, even though etcd still
// has the lease (its keeper gave up; etcd may not have noticed yet).
func TestCampaignOnLeaseWithLeaseDone(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)

	doneA := make(chan struct{})
	a := await(t, campaignOnLeaseAsync(t, context.Background(), cli, grantLease(t, cli, 30), "a", WithLeaseDone(doneA)), "a")
	if a.err != nil {
		t.Fatalf("a: %v", a.err)
	}
	doneB := make(chan struct{})
	chB := campaignOnLeaseAsync(t, context.Background(), cli, grantLease(t, cli, 30), "b", WithLeaseDone(doneB))
	waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })

	close(doneB)
	r := await(t, chB, "b")
	wantCause(t, "b's campaign", r.err, ErrElectionLost, ErrLeaseDone, ErrSessionDone)
	if n := countKeys(t, cli); n != 1 {
		t.Errorf("got %d keys after b's campaign failed, want a's only", n)
	}

	close(doneA)
	wantCause(t, "a's leadership", waitDone(t, a.l, "a"), ErrElectionLost, ErrLeaseDone)

	// A campaign on a lease that is already done fails at once.
	_, err := CampaignOnLease(context.Background(), cli, grantLease(t, cli, 30), testPrefix, "c", WithLeaseDone(doneA))
	wantCause(t, "campaign with a done lease", err, ErrElectionLost, ErrLeaseDone)
}

// TestCampaignOnLeaseOfMissingLease: a lease that does not exist fails the
// campaign with ErrElectionLost, not a retry until ctx ends.
func TestCampaignOnLeaseOfMissingLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	lease := grantLease(t, cli, 30)
	revoke(t, cli, lease)
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	_, err := CampaignOnLease(ctx, cli, lease, testPrefix, "a")
	wantCause(t, "campaign", err, ErrElectionLost)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("campaign retried until its deadline: %v", err)
	}
}

// TestCampaignOnLeaseAgainKeepsToken: a leadership ended with Close keeps
// its key; a new campaign on the same lease leads again at once with the
// same token and publishes its new value.
func TestCampaignOnLeaseAgainKeepsToken(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	lease := grantLease(t, cli, 30)
	first := await(t, campaignOnLeaseAsync(t, context.Background(), cli, lease, "v1"), "first")
	if first.err != nil {
		t.Fatal(first.err)
	}
	first.l.Close()
	second := await(t, campaignOnLeaseAsync(t, context.Background(), cli, lease, "v2"), "second")
	if second.err != nil {
		t.Fatal(second.err)
	}
	if second.l.Token() != first.l.Token() {
		t.Errorf("token %d after Close and a new campaign, want the same %d", second.l.Token(), first.l.Token())
	}
	if cur := current(t, cli); cur.Value != "v2" || cur.Token != first.l.Token() {
		t.Errorf("Current() = %+v, want value v2, token %d", cur, first.l.Token())
	}
}

// TestCampaignOnLeaseStartsNoKeepAlive: the campaign and the leadership
// send no keep-alive (counted by a gRPC interceptor on the client), so a
// lease nobody keeps alive expires after its TTL and ends the leadership.
func TestCampaignOnLeaseStartsNoKeepAlive(t *testing.T) {
	srv := etcdtest.Start(t)
	var keepAlives atomic.Int64
	count := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if method == "/etcdserverpb.Lease/LeaseKeepAlive" {
			keepAlives.Add(1)
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   srv.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(count)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })

	const ttl = 2
	granted := time.Now() // before the grant: etcd cannot expire it sooner than TTL after this
	lease := grantLease(t, cli, ttl)
	r := await(t, campaignOnLeaseAsync(t, context.Background(), cli, lease, "a"), "a")
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantCause(t, "leadership on a lease nobody keeps alive", waitDone(t, r.l, "a"), ErrElectionLost)
	t.Logf("leadership ended %v after the grant (TTL %ds)", time.Since(granted).Round(time.Millisecond), ttl)
	if time.Since(granted) < ttl*time.Second {
		t.Errorf("leadership ended %v after the grant, before the lease's TTL of %ds", time.Since(granted), ttl)
	}
	if n := keepAlives.Load(); n != 0 {
		t.Errorf("got %d LeaseKeepAlive streams, want 0", n)
	}
}
