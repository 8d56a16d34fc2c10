package election

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	etcdtest.RunMemberIfChild() // the members of etcdtest.StartCluster
	goleak.VerifyTestMain(m)
}

// testPrefix is the election prefix the tests use, as clusterkit does.
const testPrefix = "/clusterkit/test/leader/"

// eventually is the generous bound for "eventually" checks on a loaded
// 2-core machine; expected times are milliseconds to a few seconds.
const eventually = 30 * time.Second

// newSession returns a session with the given TTL (seconds), closed by
// t.Cleanup (its error ignored: the lease may already be revoked).
func newSession(t *testing.T, cli *clientv3.Client, ttl int) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newClient returns a client of endpoint, closed by t.Cleanup.
func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	return etcdtest.NewClient(t, endpoint)
}

// result is what a background Campaign returned, and when.
type result struct {
	l   *Leadership
	err error
	at  time.Time
}

// campaignAsync runs Campaign in a goroutine that the test awaits (through
// t.Cleanup, after cancelling ctx); a Leadership it wins is closed by the
// cleanup too.
func campaignAsync(t *testing.T, ctx context.Context, s *concurrency.Session, value string) <-chan result {
	t.Helper()
	return runAsync(t, ctx, func(ctx context.Context) (*Leadership, error) { return Campaign(ctx, s, testPrefix, value) })
}

// campaignOnLeaseAsync is campaignAsync for CampaignOnLease.
func campaignOnLeaseAsync(t *testing.T, ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, value string, opts ...CampaignOption) <-chan result {
	t.Helper()
	return runAsync(t, ctx, func(ctx context.Context) (*Leadership, error) {
		return CampaignOnLease(ctx, cli, lease, testPrefix, value, opts...)
	})
}

// runAsync runs campaign in a goroutine that the test awaits (through
// t.Cleanup, after cancelling ctx); a Leadership it wins is closed by the
// cleanup too.
func runAsync(t *testing.T, ctx context.Context, campaign func(context.Context) (*Leadership, error)) <-chan result {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l, err := campaign(ctx)
		ch <- result{l: l, err: err, at: time.Now()}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		select {
		case r := <-ch: // not consumed by the test
			if r.l != nil {
				r.l.Close()
			}
		default:
		}
	})
	return ch
}

// grantLease grants a lease of ttl seconds that nothing keeps alive; it is
// revoked by t.Cleanup (if still there).
func grantLease(t *testing.T, cli *clientv3.Client, ttl int64) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	resp, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatalf("grant lease: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), eventually)
		defer cancel()
		_, _ = cli.Revoke(ctx, resp.ID)
	})
	return resp.ID
}

// revoke revokes lease, failing the test on error.
func revoke(t *testing.T, cli *clientv3.Client, lease clientv3.LeaseID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatalf("revoke lease %x: %v", lease, err)
	}
}

// mustCampaign campaigns and fails the test unless it leads within
// eventually; the Leadership is closed by t.Cleanup.
func mustCampaign(t *testing.T, s *concurrency.Session, value string) *Leadership {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	l, err := Campaign(ctx, s, testPrefix, value)
	if err != nil {
		t.Fatalf("Campaign(%q): %v", value, err)
	}
	t.Cleanup(l.Close)
	return l
}

// await waits for a campaign result, failing the test after eventually; a
// Leadership it returns is closed by t.Cleanup.
func await(t *testing.T, ch <-chan result, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		if r.l != nil {
			t.Cleanup(r.l.Close)
		}
		return r
	case <-time.After(eventually):
		t.Fatalf("%s: Campaign did not return within %v", what, eventually)
		return result{}
	}
}

// notYet fails the test if the campaign returns within d: used to check that
// a waiting candidate does not lead. It cannot flake: a correct candidate
// never returns here, however slow the machine.
func notYet(t *testing.T, ch <-chan result, d time.Duration, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned while another candidate leads: leadership %v, err %v", what, r.l != nil, r.err)
	case <-time.After(d):
	}
}

// waitDone waits for the leadership's context to end and returns its cause.
func waitDone(t *testing.T, l *Leadership, what string) error {
	t.Helper()
	select {
	case <-l.Done():
		return context.Cause(l.Context())
	case <-time.After(eventually):
		t.Fatalf("%s: leadership context not cancelled within %v", what, eventually)
		return nil
	}
}

// waitFor polls cond every 10 ms until it holds, failing after eventually.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, eventually)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countKeys returns the number of candidate keys under testPrefix.
func countKeys(t *testing.T, cli *clientv3.Client) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	resp, err := cli.Get(ctx, testPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("count keys: %v", err)
	}
	return int(resp.Count)
}

// current returns the current leader, failing the test on error.
func current(t *testing.T, cli *clientv3.Client) Leader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	l, err := Current(ctx, cli, testPrefix)
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return l
}

// fencedPut runs a Txn guarded by cmp that puts key=val, as a caller of
// Leadership.Cmp would, and returns whether it succeeded.
func fencedPut(t *testing.T, cli *clientv3.Client, cmp clientv3.Cmp, key, val string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, val)).Commit()
	if err != nil {
		t.Fatalf("fenced put %s: %v", key, err)
	}
	return resp.Succeeded
}

// wantCause checks that err wraps every one of wants.
func wantCause(t *testing.T, what string, err error, wants ...error) {
	t.Helper()
	for _, want := range wants {
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want an error wrapping %v", what, err, want)
		}
	}
}

// stats returns the median and maximum of ds (ds is sorted in place).
func stats(ds []time.Duration) (p50, max time.Duration) {
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)-1]
}
