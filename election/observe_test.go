package election

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/tcpproxy"
)

// observe starts Observe; t.Cleanup cancels it and waits for the channel to
// close (which awaits its goroutine).
func observe(t *testing.T, cli *clientv3.Client) <-chan Leader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := Observe(ctx, cli, testPrefix)
	if err != nil {
		cancel()
		t.Fatalf("Observe: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		drained(t, ch)
	})
	return ch
}

// drained reads ch until it is closed, failing the test after eventually.
func drained(t *testing.T, ch <-chan Leader) {
	t.Helper()
	timeout := time.After(eventually)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Errorf("Observe channel not closed within %v", eventually)
			return
		}
	}
}

// recv returns the next observed leader, failing the test after eventually
// or if the channel is closed.
func recv(t *testing.T, ch <-chan Leader, what string) Leader {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatalf("%s: Observe channel closed", what)
		}
		return l
	case <-time.After(eventually):
		t.Fatalf("%s: nothing observed within %v", what, eventually)
		return Leader{}
	}
}

// quiet fails the test if anything is observed within d (a duplicate, or a
// change that did not happen). It cannot flake: a correct observer sends
// nothing here.
func quiet(t *testing.T, ch <-chan Leader, d time.Duration, what string) {
	t.Helper()
	select {
	case l := <-ch:
		t.Fatalf("%s: observed %+v, want nothing", what, l)
	case <-time.After(d):
	}
}

func leaderOfL(l *Leadership, value string) Leader {
	return Leader{Key: l.Key(), Value: value, Token: l.Token()}
}

func TestObserve(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ch := observe(t, cli)

	if got := recv(t, ch, "start"); got != (Leader{}) {
		t.Fatalf("at start: got %+v, want no leader", got)
	}
	sA := newSession(t, srv.Client(t), 10)
	a := mustCampaign(t, sA, "a")
	if got, want := recv(t, ch, "a leads"), leaderOfL(a, "a"); got != want {
		t.Fatalf("a leads: got %+v, want %+v", got, want)
	}

	sB := newSession(t, srv.Client(t), 10)
	chB := campaignAsync(t, context.Background(), sB, "b")
	waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })
	quiet(t, ch, 300*time.Millisecond, "b queued behind a")

	if err := a.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := await(t, chB, "b")
	if r.err != nil {
		t.Fatalf("b: %v", r.err)
	}
	if got, want := recv(t, ch, "a resigned"), leaderOfL(r.l, "b"); got != want {
		t.Fatalf("a resigned: got %+v, want %+v", got, want)
	}

	// The leader announces a new value under the same key and token.
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if _, err := cli.Put(ctx, r.l.Key(), "b2", clientv3.WithLease(sB.Lease())); err != nil {
		t.Fatal(err)
	}
	if got, want := recv(t, ch, "b proclaims"), leaderOfL(r.l, "b2"); got != want {
		t.Fatalf("b proclaims: got %+v, want %+v", got, want)
	}

	// The only candidate resigns: no leader.
	if err := r.l.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch, "b resigned"); got != (Leader{}) {
		t.Fatalf("b resigned: got %+v, want no leader", got)
	}

	// A leader whose lease is revoked: no leader again.
	again := mustCampaign(t, sA, "a")
	if got, want := recv(t, ch, "a leads again"), leaderOfL(again, "a"); got != want {
		t.Fatalf("a leads again: got %+v, want %+v", got, want)
	}
	if _, err := cli.Revoke(ctx, sA.Lease()); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch, "a's lease revoked"); got != (Leader{}) {
		t.Fatalf("a's lease revoked: got %+v, want no leader", got)
	}
	quiet(t, ch, 300*time.Millisecond, "no leader")
}

// TestObserveSlowReader: changes made while nobody reads are coalesced: the
// reader gets the latest leader, never two equal values in a row. (A return
// to the value last read, e.g. no leader → a → no leader, may be reported
// as nothing at all.)
func TestObserveSlowReader(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ch := observe(t, cli)
	if got := recv(t, ch, "start"); got != (Leader{}) {
		t.Fatalf("at start: got %+v, want no leader", got)
	}

	// Not reading: a leads, b queues, a resigns, b leads.
	a := mustCampaign(t, newSession(t, srv.Client(t), 10), "a")
	chB := campaignAsync(t, context.Background(), newSession(t, srv.Client(t), 10), "b")
	waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })
	if err := a.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := await(t, chB, "b")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := leaderOfL(r.l, "b")

	prev := Leader{}
	var got []Leader
	for {
		l := recv(t, ch, "catching up")
		got = append(got, l)
		if l == prev {
			t.Fatalf("observed %+v twice in a row (all: %+v)", l, got)
		}
		prev = l
		if l == want {
			break
		}
		if len(got) >= 2 {
			t.Fatalf("observed %+v, want at most a then b", got)
		}
	}
	quiet(t, ch, 300*time.Millisecond, "b leads")
	t.Logf("a slow reader observed %d values for 2 changes: %+v", len(got), got)
}

// TestObserveSurvivesCompaction: the observer's watch breaks, the leader
// changes and the key space is compacted past the watch; when the watch
// resumes it is compacted, the observer re-reads and reports the new leader.
func TestObserveSurvivesCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	p := tcpproxy.Start(t, srv.Endpoints()[0])
	ch := observe(t, newClient(t, "http://"+p.Addr()))

	a := mustCampaign(t, newSession(t, srv.Client(t), 10), "a")
	if got := recv(t, ch, "start"); got != (Leader{}) && got != leaderOfL(a, "a") {
		t.Fatalf("at start: got %+v, want no leader or a", got)
	} else if got == (Leader{}) {
		if got := recv(t, ch, "a leads"); got != leaderOfL(a, "a") {
			t.Fatalf("a leads: got %+v, want a", got)
		}
	}

	p.Cut()
	chB := campaignAsync(t, context.Background(), newSession(t, srv.Client(t), 10), "b")
	waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })
	if err := a.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := await(t, chB, "b")
	if r.err != nil {
		t.Fatal(r.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	srv.Compact(ctx, cli)
	p.Restore()

	if got, want := recv(t, ch, "after compaction"), leaderOfL(r.l, "b"); got != want {
		t.Fatalf("after compaction: got %+v, want %+v", got, want)
	}
	if err := r.l.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch, "b resigned"); got != (Leader{}) {
		t.Fatalf("b resigned: got %+v, want no leader", got)
	}
}

// TestObserveEnds: the channel closes when the client is closed.
func TestObserveEnds(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := newClient(t, srv.Endpoints()[0])
	ch, err := Observe(context.Background(), cli, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch, "start"); got != (Leader{}) {
		t.Fatalf("at start: got %+v, want no leader", got)
	}
	cli.Close()
	drained(t, ch)
}
