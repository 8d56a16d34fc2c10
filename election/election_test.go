package election

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/tcpproxy"
)

func TestInvalidArguments(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	s := newSession(t, cli, 10)
	lease := grantLease(t, cli, 10)
	ctx := context.Background()

	tests := []struct {
		name string
		run  func() error
		want string // in the message
	}{
		{"Campaign nil session", func() error { _, err := Campaign(ctx, nil, testPrefix, "v"); return err }, "session is nil"},
		{"Campaign empty prefix", func() error { _, err := Campaign(ctx, s, "", "v"); return err }, `prefix ""`},
		{"Campaign slash prefix", func() error { _, err := Campaign(ctx, s, "///", "v"); return err }, `prefix "///"`},
		{"CampaignOnLease nil client", func() error { _, err := CampaignOnLease(ctx, nil, lease, testPrefix, "v"); return err }, "client is nil"},
		{"CampaignOnLease zero lease", func() error { _, err := CampaignOnLease(ctx, cli, clientv3.NoLease, testPrefix, "v"); return err }, "lease is 0"},
		{"CampaignOnLease empty prefix", func() error { _, err := CampaignOnLease(ctx, cli, lease, "", "v"); return err }, `prefix ""`},
		{"Observe nil client", func() error { _, err := Observe(ctx, nil, testPrefix); return err }, "client is nil"},
		{"Observe empty prefix", func() error { _, err := Observe(ctx, cli, ""); return err }, `prefix ""`},
		{"Current nil client", func() error { _, err := Current(ctx, nil, testPrefix); return err }, "client is nil"},
		{"Current slash prefix", func() error { _, err := Current(ctx, cli, "/"); return err }, `prefix "/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got message %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if n := countKeys(t, cli); n != 0 {
		t.Errorf("got %d candidate keys after invalid calls, want 0", n)
	}
}

// TestOneLeaderAtATime: of n candidates exactly one leads at any time; each
// resign hands over to the next, in create-revision order, with growing
// tokens; a deposed leader's Cmp fences its writes.
func TestOneLeaderAtATime(t *testing.T) {
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("%d candidates", n), func(t *testing.T) {
			srv := etcdtest.Start(t)
			cli := srv.Client(t)
			chs := make([]<-chan result, n)
			for i := range n {
				chs[i] = campaignAsync(t, context.Background(), newSession(t, cli, 10), fmt.Sprintf("node-%d", i))
			}
			waitFor(t, "all candidates queued", func() bool { return countKeys(t, cli) == n })

			remaining := map[int]bool{}
			for i := range n {
				remaining[i] = true
			}
			var prevToken int64
			for range n {
				// Exactly one of the remaining candidates returns.
				var (
					won = -1
					r   result
				)
				waitFor(t, "a candidate leads", func() bool {
					for i := range remaining {
						select {
						case r = <-chs[i]:
							won = i
							return true
						default:
						}
					}
					return false
				})
				if r.l != nil {
					t.Cleanup(r.l.Close)
				}
				delete(remaining, won)
				// Give the others time to (wrongly) return too.
				time.Sleep(300 * time.Millisecond)
				for i := range remaining {
					select {
					case o := <-chs[i]:
						t.Fatalf("candidates %d and %d both returned (second: leadership %v, err %v)", won, i, o.l != nil, o.err)
					default:
					}
				}
				if r.err != nil {
					t.Fatalf("candidate %d: Campaign: %v", won, r.err)
				}
				l := r.l

				cur := current(t, cli)
				if cur.Key != l.Key() || cur.Token != l.Token() || cur.Value != fmt.Sprintf("node-%d", won) {
					t.Fatalf("Current() = %+v, want key %s token %d value node-%d", cur, l.Key(), l.Token(), won)
				}
				if l.Token() <= prevToken {
					t.Errorf("token %d after token %d, want it to grow", l.Token(), prevToken)
				}
				prevToken = l.Token()
				if !fencedPut(t, cli, l.Cmp(), "/clusterkit/test/assignment", cur.Value) {
					t.Fatalf("candidate %d: fenced put failed while leading", won)
				}
				if err := l.Resign(context.Background()); err != nil {
					t.Fatalf("candidate %d: Resign: %v", won, err)
				}
				if fencedPut(t, cli, l.Cmp(), "/clusterkit/test/assignment", "stale") {
					t.Fatalf("candidate %d: fenced put succeeded after Resign", won)
				}
			}
		})
	}
}

// TestLeaseLost: the leader's lease is lost (revoked by someone else, or it
// expires after the keep-alives stop): its context is cancelled, the waiting
// candidate leads, and Txns fenced on the old token fail.
func TestLeaseLost(t *testing.T) {
	tests := []struct {
		name      string
		ttl       int // the leader's session TTL, seconds
		lose      func(t *testing.T, cli *clientv3.Client, s *concurrency.Session)
		wantCause []error
	}{
		{
			name: "revoked",
			ttl:  10,
			lose: func(t *testing.T, cli *clientv3.Client, s *concurrency.Session) {
				ctx, cancel := context.WithTimeout(context.Background(), eventually)
				defer cancel()
				if _, err := cli.Revoke(ctx, s.Lease()); err != nil {
					t.Fatalf("revoke: %v", err)
				}
			},
			wantCause: []error{ErrElectionLost},
		},
		{
			// Orphan stops the keep-alives without revoking: the lease
			// expires on the server after its TTL, as after a crash.
			name:      "expired",
			ttl:       2,
			lose:      func(t *testing.T, _ *clientv3.Client, s *concurrency.Session) { s.Orphan() },
			wantCause: []error{ErrElectionLost, ErrSessionDone},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := etcdtest.Start(t)
			cli := srv.Client(t)
			cliA := srv.Client(t)
			sA := newSession(t, cliA, tt.ttl)
			a := mustCampaign(t, sA, "a")
			chB := campaignAsync(t, context.Background(), newSession(t, cli, 10), "b")
			waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })
			notYet(t, chB, 200*time.Millisecond, "b")

			lost := time.Now()
			tt.lose(t, cli, sA)
			cause := waitDone(t, a, "a")
			aDone := time.Since(lost)
			wantCause(t, "a's cause", cause, tt.wantCause...)
			r := await(t, chB, "b")
			if r.err != nil {
				t.Fatalf("b: Campaign: %v", r.err)
			}
			b := r.l
			t.Logf("lease %s (TTL %ds): old leader's context cancelled after %v, new leader after %v",
				tt.name, tt.ttl, aDone.Round(time.Millisecond), r.at.Sub(lost).Round(time.Millisecond))

			if b.Token() <= a.Token() {
				t.Errorf("b's token %d <= a's %d", b.Token(), a.Token())
			}
			if fencedPut(t, cli, a.Cmp(), "/clusterkit/test/assignment", "from a") {
				t.Errorf("a Txn fenced on the old token %d succeeded after b leads", a.Token())
			}
			ctx, cancel := context.WithTimeout(context.Background(), eventually)
			defer cancel()
			if _, err := a.Txn(ctx, nil, clientv3.OpPut("/clusterkit/test/assignment", "from a")); !errors.Is(err, ErrNotLeader) {
				t.Errorf("a.Txn: got %v, want ErrNotLeader", err)
			}
			if _, err := b.Txn(ctx, nil, clientv3.OpPut("/clusterkit/test/assignment", "from b")); err != nil {
				t.Errorf("b.Txn: %v", err)
			}
			resp, err := cli.Get(ctx, "/clusterkit/test/assignment")
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "from b" {
				t.Errorf("assignment = %v, want written by b only", resp.Kvs)
			}
		})
	}
}

// TestResignHandover measures how long the waiting candidate takes to lead
// after the leader resigns, over several rounds: with a successor that has
// waited a while (the usual case), and with one that queued just before the
// resign (etcd's Campaign then watches from a past revision, and etcd syncs
// such watchers every 100 ms).
func TestResignHandover(t *testing.T) {
	for _, tt := range []struct {
		name   string
		settle time.Duration // between the successor queuing and the resign
	}{
		{"successor waiting", 250 * time.Millisecond},
		{"successor just queued", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := etcdtest.Start(t)
			cli := srv.Client(t)
			sessions := []*concurrency.Session{newSession(t, srv.Client(t), 10), newSession(t, srv.Client(t), 10)}
			leader := mustCampaign(t, sessions[0], "0")
			const rounds = 12
			var took []time.Duration
			for i := range rounds {
				next := (i + 1) % 2
				ch := campaignAsync(t, context.Background(), sessions[next], fmt.Sprint(next))
				waitFor(t, "next candidate queued", func() bool { return countKeys(t, cli) == 2 })
				time.Sleep(tt.settle)

				start := time.Now()
				if err := leader.Resign(context.Background()); err != nil {
					t.Fatalf("round %d: Resign: %v", i, err)
				}
				r := await(t, ch, "next")
				if r.err != nil {
					t.Fatalf("round %d: Campaign: %v", i, r.err)
				}
				took = append(took, r.at.Sub(start))

				wantCause(t, "resigned leader's cause", context.Cause(leader.Context()), ErrResigned)
				if err := leader.Resign(context.Background()); err != nil {
					t.Errorf("round %d: second Resign: got %v, want nil", i, err)
				}
				if fencedPut(t, cli, leader.Cmp(), "/clusterkit/test/assignment", "stale") {
					t.Fatalf("round %d: fenced put of the resigned leader succeeded", i)
				}
				leader = r.l
			}
			p50, maxd := stats(took)
			t.Logf("resign handover, %s, over %d rounds: p50 %v, max %v", tt.name, rounds, p50.Round(time.Microsecond), maxd.Round(time.Microsecond))
			if maxd > 10*time.Second {
				t.Errorf("handover took up to %v, want well under 10s (target 200ms)", maxd)
			}
		})
	}
}

// TestIssue11051 reproduces etcd #11051: candidate b waits behind a, b's
// lease is revoked while it waits, then a resigns. etcd's Campaign returns
// nil although b's key is gone; ours must return ErrElectionLost.
func TestIssue11051(t *testing.T) {
	setup := func(t *testing.T) (cli *clientv3.Client, a *Leadership, sB *concurrency.Session) {
		srv := etcdtest.Start(t)
		cli = srv.Client(t)
		a = mustCampaign(t, newSession(t, srv.Client(t), 10), "a")
		// TTL 60: b's keep-alive (every 20 s) does not notice the revoke
		// before the test ends, so the session stays "alive" as in #11051.
		sB = newSession(t, srv.Client(t), 60)
		return cli, a, sB
	}
	loseB := func(t *testing.T, cli *clientv3.Client, a *Leadership, sB *concurrency.Session) {
		t.Helper()
		waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })
		ctx, cancel := context.WithTimeout(context.Background(), eventually)
		defer cancel()
		if _, err := cli.Revoke(ctx, sB.Lease()); err != nil {
			t.Fatalf("revoke b's lease: %v", err)
		}
		if n := countKeys(t, cli); n != 1 {
			t.Fatalf("got %d keys after revoking b, want 1", n)
		}
		if err := a.Resign(ctx); err != nil {
			t.Fatalf("a: Resign: %v", err)
		}
	}

	t.Run("etcd Campaign returns nil without the key", func(t *testing.T) {
		cli, a, sB := setup(t)
		e := concurrency.NewElection(sB, strings.TrimSuffix(testPrefix, "/"))
		errc := make(chan error, 1)
		ctx, cancel := context.WithTimeout(context.Background(), eventually)
		defer cancel()
		go func() { errc <- e.Campaign(ctx, "b") }()
		loseB(t, cli, a, sB)
		err := <-errc
		if err != nil {
			t.Fatalf("etcd Campaign returned %v; #11051 no longer reproduces on this etcd version (the check in our Campaign stays harmless; update this test)", err)
		}
		resp, gerr := cli.Get(ctx, e.Key())
		if gerr != nil {
			t.Fatal(gerr)
		}
		t.Logf("etcd Campaign returned nil; its key %s exists: %v (false leader)", e.Key(), len(resp.Kvs) == 1)
		if len(resp.Kvs) != 0 {
			t.Fatalf("b's key exists after its lease was revoked")
		}
	})

	t.Run("Campaign returns ErrElectionLost", func(t *testing.T) {
		cli, a, sB := setup(t)
		ch := campaignAsync(t, context.Background(), sB, "b")
		loseB(t, cli, a, sB)
		r := await(t, ch, "b")
		if r.l != nil {
			t.Fatalf("b got a Leadership (key %s) without holding the key", r.l.Key())
		}
		wantCause(t, "b's Campaign", r.err, ErrElectionLost)
		if errors.Is(r.err, ErrSessionDone) {
			t.Fatalf("b's session ended first (%v): the test did not exercise the #11051 path", r.err)
		}
		t.Logf("b's Campaign: %v", r.err)
		if cur := current(t, cli); cur != (Leader{}) {
			t.Errorf("Current() = %+v, want no leader", cur)
		}
	})
}

func TestLeadershipEnds(t *testing.T) {
	tests := []struct {
		name      string
		end       func(t *testing.T, cli *clientv3.Client, s *concurrency.Session, l *Leadership)
		wantCause []error
	}{
		{
			name: "session closed",
			end: func(t *testing.T, _ *clientv3.Client, s *concurrency.Session, _ *Leadership) {
				if err := s.Close(); err != nil {
					t.Fatalf("close session: %v", err)
				}
			},
			wantCause: []error{ErrElectionLost},
		},
		{
			name: "key deleted by an operator",
			end: func(t *testing.T, cli *clientv3.Client, _ *concurrency.Session, l *Leadership) {
				if _, err := cli.Delete(context.Background(), l.Key()); err != nil {
					t.Fatal(err)
				}
			},
			wantCause: []error{ErrElectionLost},
		},
		{
			name: "fenced txn finds the key gone",
			end: func(t *testing.T, cli *clientv3.Client, _ *concurrency.Session, l *Leadership) {
				// Delete and at once write: the Txn may see the loss before
				// the watch does; either way the context ends.
				if _, err := cli.Delete(context.Background(), l.Key()); err != nil {
					t.Fatal(err)
				}
				_, err := l.Txn(context.Background(), nil, clientv3.OpPut("/clusterkit/test/assignment", "x"))
				if !errors.Is(err, ErrNotLeader) {
					t.Errorf("Txn: got %v, want ErrNotLeader", err)
				}
			},
			wantCause: []error{ErrElectionLost},
		},
		{
			name:      "Close",
			end:       func(t *testing.T, _ *clientv3.Client, _ *concurrency.Session, l *Leadership) { l.Close(); l.Close() },
			wantCause: []error{ErrClosed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := etcdtest.Start(t)
			cli := srv.Client(t)
			s := newSession(t, srv.Client(t), 10)
			l := mustCampaign(t, s, "a")
			tt.end(t, cli, s, l)
			wantCause(t, "cause", waitDone(t, l, tt.name), tt.wantCause...)
			if _, err := l.Txn(context.Background(), nil, clientv3.OpPut("/clusterkit/test/assignment", "x")); !errors.Is(err, ErrNotLeader) {
				t.Errorf("Txn after the end: got %v, want ErrNotLeader", err)
			}
		})
	}
}

// TestCloseKeepsKey: Close ends the term locally but leaves the key (no one
// else leads); a later Resign deletes it.
func TestCloseKeepsKey(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	l := mustCampaign(t, newSession(t, srv.Client(t), 10), "a")
	l.Close()
	wantCause(t, "cause", context.Cause(l.Context()), ErrClosed)
	if cur := current(t, cli); cur.Key != l.Key() {
		t.Fatalf("after Close: Current() = %+v, want key %s still there", cur, l.Key())
	}
	if !fencedPut(t, cli, l.Cmp(), "/clusterkit/test/k", "v") {
		t.Errorf("Cmp no longer holds after Close, want it to hold until the key goes")
	}
	if err := l.Resign(context.Background()); err != nil {
		t.Fatalf("Resign after Close: %v", err)
	}
	wantCause(t, "cause after Resign", context.Cause(l.Context()), ErrClosed)
	if cur := current(t, cli); cur != (Leader{}) {
		t.Errorf("after Resign: Current() = %+v, want no leader", cur)
	}
}

// TestResignWithDoneContext: Resign with a cancelled ctx still deletes the
// key, using a fresh bounded context.
func TestResignWithDoneContext(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	l := mustCampaign(t, newSession(t, srv.Client(t), 10), "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Resign(ctx); err != nil {
		t.Fatalf("Resign(cancelled ctx): %v", err)
	}
	if n := countKeys(t, cli); n != 0 {
		t.Errorf("got %d keys after Resign, want 0", n)
	}
}

func TestCampaignEnds(t *testing.T) {
	tests := []struct {
		name      string
		end       func(cancel context.CancelFunc, s *concurrency.Session)
		wantCause []error
	}{
		{"ctx cancelled", func(cancel context.CancelFunc, _ *concurrency.Session) { cancel() }, []error{context.Canceled}},
		{"session orphaned", func(_ context.CancelFunc, s *concurrency.Session) { s.Orphan() }, []error{ErrElectionLost, ErrSessionDone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := etcdtest.Start(t)
			cli := srv.Client(t)
			a := mustCampaign(t, newSession(t, srv.Client(t), 10), "a")
			sB := newSession(t, srv.Client(t), 10)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch := campaignAsync(t, ctx, sB, "b")
			waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })
			tt.end(cancel, sB)
			r := await(t, ch, "b")
			if r.l != nil {
				t.Fatalf("got a Leadership, want an error")
			}
			wantCause(t, "Campaign", r.err, tt.wantCause...)
			// b's key is gone (deleted, not left queued until its lease ends).
			if n := countKeys(t, cli); n != 1 {
				t.Errorf("got %d keys, want only a's", n)
			}
			if cur := current(t, cli); cur.Key != a.Key() {
				t.Errorf("Current() = %+v, want a", cur)
			}
		})
	}
}

func TestCampaignWithDoneSession(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newSession(t, srv.Client(t), 10)
	s.Orphan()
	_, err := Campaign(context.Background(), s, testPrefix, "a")
	wantCause(t, "Campaign", err, ErrElectionLost, ErrSessionDone)
}

// TestCampaignAgain: the same session can lead again after resigning, with
// a new, larger token.
func TestCampaignAgain(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newSession(t, srv.Client(t), 10)
	first := mustCampaign(t, s, "a")
	if err := first.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := mustCampaign(t, s, "a2")
	if second.Token() <= first.Token() {
		t.Errorf("second token %d <= first %d", second.Token(), first.Token())
	}
	if first.Key() != second.Key() {
		t.Errorf("keys %s and %s differ for one session", first.Key(), second.Key())
	}
	if got := current(t, srv.Client(t)); got.Value != "a2" || got.Token != second.Token() {
		t.Errorf("Current() = %+v, want value a2 token %d", got, second.Token())
	}
}

// TestTxnConditions: Txn tells a failed caller condition (nil error,
// Succeeded false) from a lost leadership (ErrNotLeader).
func TestTxnConditions(t *testing.T) {
	srv := etcdtest.Start(t)
	l := mustCampaign(t, newSession(t, srv.Client(t), 10), "a")
	ctx := context.Background()
	const key = "/clusterkit/test/assignment"
	create := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)

	resp, err := l.Txn(ctx, []clientv3.Cmp{create}, clientv3.OpPut(key, "v1"))
	if err != nil || !resp.Succeeded {
		t.Fatalf("first create: got %v, %v; want success", resp, err)
	}
	resp, err = l.Txn(ctx, []clientv3.Cmp{create}, clientv3.OpPut(key, "v2"))
	if err != nil || resp.Succeeded {
		t.Fatalf("second create: got succeeded=%v, err %v; want not succeeded, nil error", resp != nil && resp.Succeeded, err)
	}
	if l.Context().Err() != nil {
		t.Fatalf("a failed caller condition ended the leadership: %v", context.Cause(l.Context()))
	}
}

// TestLeadershipSurvivesCompaction: the leader's watch breaks, the key space
// is compacted past it, the watch resumes: the monitor re-reads the key and
// keeps the leadership; a later deletion still ends it.
func TestLeadershipSurvivesCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	p := tcpproxy.Start(t, srv.Endpoints()[0])
	viaProxy := newClient(t, "http://"+p.Addr())
	l := mustCampaign(t, newSession(t, viaProxy, 10), "a")

	p.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	for i := range 5 {
		if _, err := cli.Put(ctx, "/clusterkit/test/other", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	srv.Compact(ctx, cli)
	p.Restore()

	waitFor(t, "monitor re-read after compaction", func() bool { return l.resyncs.Load() >= 1 })
	if err := l.Context().Err(); err != nil {
		t.Fatalf("leadership ended by compaction: %v", context.Cause(l.Context()))
	}
	if _, err := l.Txn(ctx, nil, clientv3.OpPut("/clusterkit/test/assignment", "a")); err != nil {
		t.Fatalf("Txn after compaction: %v", err)
	}
	if _, err := cli.Delete(ctx, l.Key()); err != nil {
		t.Fatal(err)
	}
	wantCause(t, "cause", waitDone(t, l, "after delete"), ErrElectionLost)
}

// TestLeadershipSurvivesEtcdRestart: etcd restarts (same data, the lease
// survives); the leader keeps leading, and the waiting candidate waits.
func TestLeadershipSurvivesEtcdRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	// TTL 30: a stop and restart of the embedded etcd takes 5-10 s here,
	// during which no keep-alive is answered; the leases must outlive it.
	a := mustCampaign(t, newSession(t, srv.Client(t), 30), "a")
	chB := campaignAsync(t, context.Background(), newSession(t, srv.Client(t), 30), "b")
	cli := srv.Client(t)
	waitFor(t, "b queued", func() bool { return countKeys(t, cli) == 2 })

	t0 := time.Now()
	srv.Stop()
	srv.Restart()
	t.Logf("etcd stopped and restarted in %v", time.Since(t0).Round(time.Millisecond))

	var lastErr error
	waitFor(t, "a fenced Txn after restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, lastErr = a.Txn(ctx, nil, clientv3.OpPut("/clusterkit/test/assignment", "a"))
		if errors.Is(lastErr, ErrNotLeader) {
			t.Fatalf("a lost leadership over an etcd restart: %v", context.Cause(a.Context()))
		}
		return lastErr == nil
	})
	t.Logf("leader's fenced Txn succeeds %v after the stop", time.Since(t0).Round(time.Millisecond))
	notYet(t, chB, 300*time.Millisecond, "b")
	if err := a.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := await(t, chB, "b"); r.err != nil {
		t.Fatalf("b: %v", r.err)
	}
}

// TestCampaignWithRevokedLease: the session's lease was revoked before the
// campaign, unbeknown to the session (its keep-alive has not run yet):
// Campaign fails with ErrElectionLost instead of retrying until ctx ends.
func TestCampaignWithRevokedLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	s := newSession(t, srv.Client(t), 60)
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if _, err := cli.Revoke(ctx, s.Lease()); err != nil {
		t.Fatal(err)
	}
	_, err := Campaign(ctx, s, testPrefix, "a")
	wantCause(t, "Campaign", err, ErrElectionLost)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Campaign retried until its deadline: %v", err)
	}
	t.Logf("Campaign: %v", err)
}
