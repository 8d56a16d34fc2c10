package embedetcd

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every "eventually" in these tests; it is generous so
// that a starved 2-core machine does not cause false failures.
const testTimeout = 60 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	noLeaksT(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// noLeaksT checks, after the test and its other clean-ups, that every
// goroutine started during the test has ended. etcd's peer HTTP server can
// leave a connection goroutine behind for up to its 5 s read timeout after
// Close (a finished request whose pending background read raced with
// etcd's per-read deadline), so this waits up to 20 s before it reports a
// leak; without it, goleak in TestMain would see those goroutines.
func noLeaksT(t testing.TB) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		begin := time.Now()
		var err error
		for time.Since(begin) < 20*time.Second {
			if err = goleak.Find(before); err == nil {
				if d := time.Since(begin); d > 500*time.Millisecond {
					t.Logf("goroutines of the test ended %v after its clean-up", d.Round(time.Millisecond))
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("goroutines leaked by the test: %v", err)
	})
}

// startT starts a member and registers its Stop with t.Cleanup.
func startT(t *testing.T, ctx context.Context, cfg Config) *Member {
	t.Helper()
	begin := time.Now()
	m, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	t.Logf("figure: Start(%s) ready after %v", cfg.Name, time.Since(begin))
	t.Cleanup(func() { stopT(t, m) })
	return m
}

// stopT stops m and reports how long that took.
func stopT(t *testing.T, m *Member) {
	t.Helper()
	begin := time.Now()
	if err := m.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	t.Logf("figure: Stop(%x) took %v", m.ID(), time.Since(begin))
}

// joinT joins a member and registers its Stop with t.Cleanup.
func joinT(t *testing.T, ctx context.Context, cfg Config, endpoints ...string) *Member {
	t.Helper()
	begin := time.Now()
	m, err := Join(ctx, cfg, endpoints)
	if err != nil {
		t.Fatalf("Join(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() { stopT(t, m) })
	logJoin(t, cfg.Name, begin, m)
	return m
}

func logJoin(t *testing.T, name string, begin time.Time, m *Member) {
	t.Helper()
	if m.joinAdded.IsZero() {
		t.Logf("figure: Join(%s) took %v (restart, no add)", name, time.Since(begin))
		return
	}
	t.Logf("figure: Join(%s) took %v; learner add → ready %v, add → voter %v",
		name, time.Since(begin), m.joinReady.Sub(m.joinAdded), m.joinVoter.Sub(m.joinAdded))
}

func clientT(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// putEventually retries a put until it succeeds (a leader election may be
// in progress) or the test timeout ends.
func putEventually(t *testing.T, ctx context.Context, cli *clientv3.Client, key, val string) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.Put(cctx, key, val)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("put %s: %v", key, err)
}

func TestStartPutStopRestartKeepsData(t *testing.T) {
	ctx := testCtx(t)
	cfg := FastTestConfig("solo", t.TempDir())
	if HasData(cfg.Dir) {
		t.Fatal("HasData of an empty dir = true, want false")
	}
	m := startT(t, ctx, cfg)
	if !HasData(cfg.Dir) {
		t.Fatal("HasData of a started member's dir = false, want true")
	}
	u, err := url.Parse(m.ClientURL())
	if err != nil || u.Port() == "" || u.Port() == "0" {
		t.Fatalf("ClientURL() = %q, want a concrete port", m.ClientURL())
	}
	if m.PeerURL() != "http://"+cfg.PeerAddr {
		t.Fatalf("PeerURL() = %q, want http://%s", m.PeerURL(), cfg.PeerAddr)
	}
	id := m.ID()

	cli := clientT(t, m.ClientURL())
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	if err := m.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := m.Stop(); err != nil { // idempotent
		t.Fatalf("second Stop: %v", err)
	}
	select {
	case <-m.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if err := m.Err(); err != nil {
		t.Fatalf("Err() after Stop = %v, want nil", err)
	}

	m2 := startT(t, ctx, cfg)
	if m2.ID() != id {
		t.Fatalf("restarted member ID = %x, want %x", m2.ID(), id)
	}
	cli2 := clientT(t, m2.ClientURL())
	resp, err := cli2.Get(ctx, "k")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("got %v, want k=v", resp.Kvs)
	}
}

func TestStopConcurrent(t *testing.T) {
	ctx := testCtx(t)
	m := startT(t, ctx, FastTestConfig("stopper", t.TempDir()))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := m.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
			select {
			case <-m.Done():
			default:
				t.Error("Stop returned before Done was closed")
			}
		})
	}
	wg.Wait()
}

func TestStartInvalidConfig(t *testing.T) {
	_, err := Start(context.Background(), Config{Dir: t.TempDir()})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Start without Name: err = %v, want ErrInvalidConfig", err)
	}
}

func TestStartContextEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, err := Start(ctx, FastTestConfig("cancelled", t.TempDir()))
	if err == nil {
		_ = m.Stop()
		t.Fatal("Start with a cancelled context succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context: err = %v, want context.Canceled", err)
	}
	// goleak in TestMain checks that nothing kept running.
}

func TestStartPeerPortInUse(t *testing.T) {
	ctx := testCtx(t)
	a := startT(t, ctx, FastTestConfig("a", t.TempDir()))
	cfg := FastTestConfig("b", t.TempDir())
	cfg.PeerAddr = a.PeerURL()[len("http://"):]
	begin := time.Now()
	_, err := Start(ctx, cfg)
	if err == nil {
		t.Fatal("Start on a peer port in use succeeded")
	}
	t.Logf("gave up after %v: %v", time.Since(begin), err)
}

// BenchmarkStartStop measures a new one-member cluster from Start to ready
// plus its Stop, with the fast test ticks and with etcd's default ticks.
func BenchmarkStartStop(b *testing.B) {
	for _, tc := range []struct {
		name        string
		tick, elect uint
	}{{"fast-ticks", 10, 100}, {"default-ticks", 0, 0}} {
		b.Run(tc.name, func(b *testing.B) {
			noLeaksT(b)
			ctx := context.Background()
			var ready time.Duration
			for b.Loop() {
				cfg := FastTestConfig("bench", b.TempDir())
				cfg.TickMs, cfg.ElectionMs = tc.tick, tc.elect
				begin := time.Now()
				m, err := Start(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				ready += time.Since(begin)
				if err := m.Stop(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ready.Milliseconds())/float64(b.N), "ms-to-ready/op")
		})
	}
}

// BenchmarkJoinLearnerToVoter measures Join of a second member (learner
// add → start → promote) into a one-member cluster, then removes it again.
// The strict reconfiguration check is off, so that the 5 s guard does not
// dominate the figure.
func BenchmarkJoinLearnerToVoter(b *testing.B) {
	noLeaksT(b)
	ctx := context.Background()
	c1 := FastTestConfig("m1", b.TempDir())
	c1.DisableStrictReconfigCheck = true
	m1, err := Start(ctx, c1)
	if err != nil {
		b.Fatal(err)
	}
	defer m1.Stop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m1.ClientURL()}, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	var addToVoter, total time.Duration
	for b.Loop() {
		c2 := FastTestConfig("m2", b.TempDir())
		c2.DisableStrictReconfigCheck = true
		begin := time.Now()
		m2, err := Join(ctx, c2, []string{m1.ClientURL()})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(begin)
		addToVoter += m2.joinVoter.Sub(m2.joinAdded)
		b.StopTimer()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = cli.MemberRemove(rctx, m2.ID())
		cancel()
		_ = m2.Stop()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(addToVoter.Microseconds())/1000/float64(b.N), "ms-add-to-voter/op")
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-join/op")
}
