package watcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/tcpproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInitialBatch(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	mustPut(t, cli, "/p/b", "2")
	mustPut(t, cli, "/p/a", "1")
	mustPut(t, cli, "/p/c", "") // empty value
	mustPut(t, cli, "/q/x", "outside")
	rev := mustPut(t, cli, "/pp", "outside: /p/ does not match /pp")

	w := startWatch(t, cli, "/p/")
	b := <-w.Batches()
	if !b.Initial || b.Resync {
		t.Fatalf("first batch: Initial=%v Resync=%v, want true, false", b.Initial, b.Resync)
	}
	if b.Revision != rev {
		t.Fatalf("initial Revision = %d, want %d", b.Revision, rev)
	}
	var got []string
	for _, e := range b.Events {
		if e.Type != Put || e.PrevValue != nil || !e.IsCreate() || e.Value == nil {
			t.Fatalf("initial event %+v: want a Put with nil PrevValue and non-nil Value", e)
		}
		got = append(got, fmt.Sprintf("%s=%s", e.Key, e.Value))
	}
	if want := []string{"/p/a=1", "/p/b=2", "/p/c="}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("initial events = %v, want %v (sorted by key)", got, want)
	}
	if w.Revision() != rev {
		t.Fatalf("Revision() = %d, want %d", w.Revision(), rev)
	}
	if !w.Connected() {
		t.Fatalf("Connected() = false after the initial batch")
	}

	// An empty prefix still gets its (empty) initial batch.
	w2 := startWatch(t, cli, "/empty/")
	if b := <-w2.Batches(); !b.Initial || len(b.Events) != 0 || b.Revision < rev {
		t.Fatalf("initial batch of an empty prefix = %+v, want Initial, no events, Revision >= %d", b, rev)
	}
}

func TestLiveChangesAndTxn(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	ctx := ctxT(t)
	mustPut(t, cli, "/p/a", "1")
	w := startWatch(t, cli, "/p/")
	v := newView(t, "/p/")
	v.readUntil(w, "initial batch", func() bool { return len(v.batches) == 1 })

	mustPut(t, cli, "/p/a", "2") // update
	mustPut(t, cli, "/q/a", "x") // outside: never delivered
	mustPut(t, cli, "/p/b", "1") // create
	mustDelete(t, cli, "/p/a")   // delete
	txn, err := cli.Txn(ctx).Then(
		clientv3.OpPut("/p/t1", "x"),
		clientv3.OpPut("/q/t", "outside"),
		clientv3.OpDelete("/p/b"),
		clientv3.OpPut("/p/t2", "y"),
	).Commit()
	if err != nil {
		t.Fatalf("txn: %v", err)
	}
	v.readUntilEqual(w, cli)

	type ev struct {
		typ       EventType
		key, val  string
		prev      string
		prevIsNil bool
	}
	var got [][]ev
	for _, b := range v.batches[1:] {
		var evs []ev
		for _, e := range b.Events {
			evs = append(evs, ev{e.Type, e.Key, string(e.Value), string(e.PrevValue), e.PrevValue == nil})
		}
		got = append(got, evs)
	}
	want := [][]ev{
		{{Put, "/p/a", "2", "1", false}},
		{{Put, "/p/b", "1", "", true}},
		{{Delete, "/p/a", "", "2", false}},
		{{Put, "/p/t1", "x", "", true}, {Delete, "/p/b", "", "1", false}, {Put, "/p/t2", "y", "", true}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches:\n got %v\nwant %v", got, want)
	}
	if last := v.batches[len(v.batches)-1]; last.Revision != txn.Header.Revision {
		t.Fatalf("txn batch Revision = %d, want %d", last.Revision, txn.Header.Revision)
	}
	if w.Revision() != txn.Header.Revision {
		t.Fatalf("Revision() = %d, want %d", w.Revision(), txn.Header.Revision)
	}
	if st := w.Stats(); st.Resyncs != 0 {
		t.Fatalf("Stats = %+v, want 0 resyncs", st)
	}
}

// TestProgressAdvancesRevision: writes outside the prefix move etcd's
// revision; progress notifications confirm it without any batch.
func TestProgressAdvancesRevision(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	w := startWatch(t, cli, "/p/", WithProgressInterval(20*time.Millisecond))
	<-w.Batches()
	rev := mustPut(t, cli, "/elsewhere", "x")
	waitFor(t, fmt.Sprintf("Revision() >= %d", rev), func() bool { return w.Revision() >= rev })
	select {
	case b := <-w.Batches():
		t.Fatalf("unexpected batch %+v", b)
	default:
	}
}

// TestBurst: 10,000 puts from concurrent writers, every one delivered
// exactly once, in revision order, each PrevValue the previous value.
func TestBurst(t *testing.T) {
	const (
		writers = 8
		perW    = 1250
		keys    = 100 // keys per writer: puts are creates and updates
	)
	s := etcdtest.Start(t)
	cli := s.Client(t)
	wcli := s.Client(t)
	w := startWatch(t, cli, "/burst/")
	v := newView(t, "/burst/")
	v.readUntil(w, "initial batch", func() bool { return len(v.batches) == 1 })

	start := time.Now()
	revs := make(chan int64, writers*perW)
	errc := make(chan error, writers)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), eventually)
			defer cancel()
			for j := 0; j < perW; j++ {
				resp, err := wcli.Put(ctx, fmt.Sprintf("/burst/%d/%d", i, j%keys), fmt.Sprint(j))
				if err != nil {
					errc <- err
					return
				}
				revs <- resp.Header.Revision
			}
		}()
	}
	var lastWrite time.Duration
	doneWriting := make(chan struct{})
	go func() { wg.Wait(); lastWrite = time.Since(start); close(doneWriting) }()

	v.readUntil(w, "10,000 events", func() bool { return len(v.batches) == 1+writers*perW })
	got := time.Since(start)
	<-doneWriting
	close(errc)
	for err := range errc {
		t.Fatalf("put: %v", err)
	}
	close(revs)
	want := make(map[int64]bool)
	for r := range revs {
		want[r] = true
	}
	for _, b := range v.batches[1:] {
		if len(b.Events) != 1 || !want[b.Revision] {
			t.Fatalf("batch at %d with %d events: want one put of a written revision", b.Revision, len(b.Events))
		}
		delete(want, b.Revision)
	}
	if len(want) != 0 {
		t.Fatalf("%d written revisions not delivered", len(want))
	}
	v.readUntilEqual(w, cli)
	t.Logf("10,000 puts by %d writers: written in %s, all delivered after %s", writers, lastWrite, got)
}

// TestCompactionWhileCutOff cuts the watcher's client off from etcd with a
// proxy, changes and compacts the prefix meanwhile, and checks that after
// the cut the consumer's view is exactly etcd's, reached by one Resync
// batch that holds exactly the net changes.
func TestCompactionWhileCutOff(t *testing.T) {
	s := etcdtest.Start(t)
	direct := s.Client(t)
	p := tcpproxy.Start(t, s.Endpoints()[0])
	cli := newClient(t, "http://"+p.Addr())

	for _, k := range []string{"keep", "update", "delete", "recreate"} {
		mustPut(t, direct, "/p/"+k, "v1")
	}
	w := startWatch(t, cli, "/p/", WithProgressInterval(50*time.Millisecond))
	v := newView(t, "/p/")
	mustPut(t, direct, "/p/live", "v1")
	v.readUntilEqual(w, direct)

	p.Cut()
	waitFor(t, "Connected() = false while cut", func() bool { return !w.Connected() })
	mustPut(t, direct, "/p/update", "v2")
	mustPut(t, direct, "/p/update", "v3")
	mustDelete(t, direct, "/p/delete")
	mustDelete(t, direct, "/p/recreate")
	mustPut(t, direct, "/p/recreate", "v2")
	mustPut(t, direct, "/p/new", "v1")
	mustPut(t, direct, "/p/transient", "v1")
	mustDelete(t, direct, "/p/transient")
	mustPut(t, direct, "/other", "x")
	s.Compact(ctxT(t), direct)
	mustPut(t, direct, "/p/after-compaction", "v1")
	if got := len(v.batches); got != 2 {
		t.Fatalf("%d batches before Restore, want 2 (nothing delivered while cut)", got)
	}
	select {
	case b := <-w.Batches():
		t.Fatalf("batch delivered while cut: %+v", b)
	default:
	}

	cutAt := time.Now()
	p.Restore()
	v.readUntilEqual(w, direct)
	t.Logf("view equal to etcd %s after Restore", time.Since(cutAt))
	waitFor(t, "Connected() after Restore", w.Connected)

	last := v.batches[len(v.batches)-1]
	if len(v.batches) != 3 || !last.Resync {
		t.Fatalf("got %d batches, last Resync=%v; want 3, the last a Resync", len(v.batches), last.Resync)
	}
	var got []string
	for _, e := range last.Events {
		got = append(got, fmt.Sprintf("%s %s=%s", e.Type, e.Key, e.Value))
	}
	// Deletes by key, then puts in ModRevision order; nothing for keep and
	// live, nothing for transient.
	want := []string{
		"DELETE /p/delete=", "DELETE /p/recreate=",
		"PUT /p/update=v3", "PUT /p/recreate=v2", "PUT /p/new=v1", "PUT /p/after-compaction=v1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resync batch:\n got %v\nwant %v", got, want)
	}
	if st := w.Stats(); st.Resyncs != 1 {
		t.Fatalf("Stats().Resyncs = %d, want 1", st.Resyncs)
	}

	// And the watch goes on from the re-read.
	mustPut(t, direct, "/p/later", "v1")
	mustDelete(t, direct, "/p/keep")
	v.readUntilEqual(w, direct)
	if w.Stats().Resyncs != 1 {
		t.Fatalf("Stats().Resyncs = %d after live changes, want still 1", w.Stats().Resyncs)
	}
}

// TestEtcdRestart restarts etcd under a running watcher and changes and
// compacts the prefix right after the restart. In the first round etcd
// stops with the watch stream open and the watcher's client reconnects by
// itself, whenever it does (it may catch the changes live or need a
// re-read). In the second, its client is cut off by a proxy before the
// stop (so the stop does not wait ~5 s for the open stream) until after
// the compaction, so it must re-read from the restarted etcd.
func TestEtcdRestart(t *testing.T) {
	s := etcdtest.Start(t)
	direct := s.Client(t)
	p := tcpproxy.Start(t, s.Endpoints()[0])
	cli := newClient(t, "http://"+p.Addr())
	mustPut(t, direct, "/p/a", "1")
	w := startWatch(t, cli, "/p/", WithProgressInterval(50*time.Millisecond))
	v := newView(t, "/p/")
	mustPut(t, direct, "/p/b", "1")
	v.readUntilEqual(w, direct)

	for round, cut := range []bool{false, true} {
		t0 := time.Now()
		if cut {
			p.Cut()
		}
		s.Stop()
		waitFor(t, "Connected() = false while etcd is down", func() bool { return !w.Connected() })
		s.Restart()
		t.Logf("round %d: etcd stopped and restarted in %s", round, time.Since(t0))
		mustPut(t, direct, "/p/a", fmt.Sprint("restart ", round))
		mustDelete(t, direct, "/p/b")
		mustPut(t, direct, "/p/b", fmt.Sprint("restart ", round))
		mustPut(t, direct, fmt.Sprint("/p/new", round), "1")
		s.Compact(ctxT(t), direct)
		mustPut(t, direct, "/p/a", fmt.Sprint("after compaction ", round))
		resyncs := v.resyncs
		t1 := time.Now()
		p.Restore()
		v.readUntilEqual(w, direct)
		waitFor(t, "Connected() after restart", w.Connected)
		t.Logf("round %d: view equal to etcd %s after the writes", round, time.Since(t1))
		if cut && v.resyncs != resyncs+1 {
			t.Fatalf("round %d: %d resync batches, want 1", round, v.resyncs-resyncs)
		}
	}
	t.Logf("stats after two restarts: %+v, %d resync batches", w.Stats(), v.resyncs)
}

// TestCloseWhileConsumerBlocked: Close and ctx cancellation stop the
// watcher promptly while it is blocked sending to a consumer that does not
// read.
func TestCloseWhileConsumerBlocked(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	for i := 0; i < 10; i++ {
		mustPut(t, cli, fmt.Sprint("/p/", i), "x")
	}

	t.Run("Close", func(t *testing.T) {
		w := startWatch(t, cli, "/p/")
		if w.Err() != nil {
			t.Fatalf("Err() = %v while running, want nil", w.Err())
		}
		// Nobody reads the initial batch; Close must not wait for it.
		w.Close()
		w.Close() // idempotent
		if !errors.Is(w.Err(), ErrClosed) {
			t.Fatalf("Err() = %v, want ErrClosed", w.Err())
		}
		for range w.Batches() { // closed; at most the pending batch
		}
		<-w.Done()
		if w.Connected() {
			t.Fatalf("Connected() = true after Close")
		}
	})

	t.Run("ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := Watch(ctx, cli, "/p/")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		<-w.Batches()
		mustPut(t, cli, "/p/0", "y") // a batch nobody reads
		time.Sleep(50 * time.Millisecond)
		cancel()
		select {
		case <-w.Done():
		case <-time.After(eventually):
			t.Fatalf("watcher still running %s after cancel", eventually)
		}
		if !errors.Is(w.Err(), context.Canceled) {
			t.Fatalf("Err() = %v, want context.Canceled", w.Err())
		}
		w.Close()
		if !errors.Is(w.Err(), context.Canceled) {
			t.Fatalf("Err() after a later Close = %v, want still context.Canceled", w.Err())
		}
	})

	t.Run("Close from consumer", func(t *testing.T) {
		w := startWatch(t, cli, "/p/")
		for range w.Batches() {
			w.Close()
		}
		if !errors.Is(w.Err(), ErrClosed) {
			t.Fatalf("Err() = %v, want ErrClosed", w.Err())
		}
	})
}

func TestClientClosed(t *testing.T) {
	s := etcdtest.Start(t)
	cli := newClient(t, s.Endpoints()[0])
	w := startWatch(t, cli, "/p/", WithBackoff(time.Millisecond, 10*time.Millisecond))
	<-w.Batches()
	cli.Close()
	select {
	case <-w.Done():
	case <-time.After(eventually):
		t.Fatalf("watcher still running %s after its client was closed", eventually)
	}
	if !errors.Is(w.Err(), ErrClientClosed) {
		t.Fatalf("Err() = %v, want ErrClientClosed", w.Err())
	}
}

func TestInitialReadFails(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	s.Stop()
	start := time.Now()
	w, err := Watch(context.Background(), cli, "/p/", WithRequestTimeout(300*time.Millisecond))
	if err == nil {
		w.Close()
		t.Fatalf("Watch with etcd down: got nil error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("error (not a deadline, still acceptable): %v", err)
	}
	if d := time.Since(start); d > eventually {
		t.Fatalf("Watch took %s with a 300ms timeout", d)
	}
	t.Logf("Watch with etcd down failed after %s: %v", time.Since(start), err)
}

func TestInvalidArguments(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	tests := []struct {
		name   string
		cli    *clientv3.Client
		prefix string
		opts   []Option
		want   string // in the message
	}{
		{name: "nil client", prefix: "/p/", want: "client is nil"},
		{name: "empty prefix", cli: cli, want: "prefix is empty"},
		{name: "request timeout", cli: cli, prefix: "/p/", opts: []Option{WithRequestTimeout(0)}, want: "WithRequestTimeout(0s)"},
		{name: "progress interval", cli: cli, prefix: "/p/", opts: []Option{WithProgressInterval(time.Millisecond)}, want: "WithProgressInterval(1ms)"},
		{name: "negative progress interval", cli: cli, prefix: "/p/", opts: []Option{WithProgressInterval(-time.Second)}, want: "WithProgressInterval(-1s)"},
		{name: "zero backoff", cli: cli, prefix: "/p/", opts: []Option{WithBackoff(0, time.Second)}, want: "WithBackoff(0s, 1s)"},
		{name: "inverted backoff", cli: cli, prefix: "/p/", opts: []Option{WithBackoff(2*time.Second, time.Second)}, want: "WithBackoff(2s, 1s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Watch(context.Background(), tt.cli, tt.prefix, tt.opts...)
			if err == nil {
				w.Close()
				t.Fatalf("got nil error, want one wrapping ErrInvalidArgument")
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, want an error wrapping ErrInvalidArgument that mentions %q", err, tt.want)
			}
		})
	}
	// Valid edge values.
	w := startWatch(t, cli, "/p/", WithProgressInterval(0), WithBackoff(time.Second, time.Second), WithLogger(nil))
	<-w.Batches()
}

// TestConnected: Connected follows reachability through a proxy cut, and
// time spent waiting for a slow consumer does not count as silence.
func TestConnected(t *testing.T) {
	s := etcdtest.Start(t)
	direct := s.Client(t)
	p := tcpproxy.Start(t, s.Endpoints()[0])
	cli := newClient(t, "http://"+p.Addr())
	w := startWatch(t, cli, "/p/", WithProgressInterval(20*time.Millisecond), WithLogger(zaptest.NewLogger(t)))

	// Nobody reads the initial batch for a while: still Connected.
	for i := 0; i < 10; i++ {
		if !w.Connected() {
			t.Fatalf("Connected() = false while the consumer is slow to read")
		}
		time.Sleep(20 * time.Millisecond)
	}
	v := newView(t, "/p/")
	v.readUntil(w, "initial batch", func() bool { return len(v.batches) == 1 })
	waitFor(t, "Connected()", w.Connected)

	for i := 0; i < 2; i++ {
		p.Cut()
		waitFor(t, "Connected() = false while cut", func() bool { return !w.Connected() })
		p.Restore()
		waitFor(t, fmt.Sprintf("Connected() after Restore %d", i), w.Connected)
	}
	mustPut(t, direct, "/p/a", "1")
	v.readUntilEqual(w, direct)
}

// TestWatchersShareAClient: several watchers on one client (as clusterkit
// runs them) each get their own changes; closing one leaves the others
// running.
func TestWatchersShareAClient(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	direct := s.Client(t)
	prefixes := []string{"/ck/members/", "/ck/assignment", "/ck/ready/", "/ck/rebalance"}
	ws := make([]*Watcher, len(prefixes))
	vs := make([]*view, len(prefixes))
	for i, p := range prefixes {
		ws[i] = startWatch(t, cli, p, WithProgressInterval(50*time.Millisecond))
		vs[i] = newView(t, p)
	}
	for round := 0; round < 3; round++ {
		for _, p := range prefixes {
			mustPut(t, direct, p+"x", fmt.Sprint(round))
		}
		for i := range ws {
			if ws[i] == nil {
				continue
			}
			vs[i].readUntilEqual(ws[i], direct)
		}
		// Close one watcher per round; the rest go on.
		ws[round].Close()
		if !errors.Is(ws[round].Err(), ErrClosed) {
			t.Fatalf("Err() = %v, want ErrClosed", ws[round].Err())
		}
		ws[round] = nil
	}
	mustPut(t, direct, "/ck/rebalance", "done")
	vs[3].readUntilEqual(ws[3], direct)
	waitFor(t, "Connected()", ws[3].Connected)
}

// TestWithoutPrevValues: the watcher keeps no values, yet delivers every
// value, tells creates from updates, and a re-read after a compaction
// still delivers the net difference.
func TestWithoutPrevValues(t *testing.T) {
	s := etcdtest.Start(t)
	direct := s.Client(t)
	p := tcpproxy.Start(t, s.Endpoints()[0])
	cli := newClient(t, "http://"+p.Addr())
	mustPut(t, direct, "/p/a", "1")
	mustPut(t, direct, "/p/gone", "1")
	w := startWatch(t, cli, "/p/", WithoutPrevValues(), WithProgressInterval(50*time.Millisecond))

	describe := func(e Event) string {
		prev := "absent"
		if e.PrevValue != nil {
			prev = fmt.Sprintf("present(%d bytes)", len(e.PrevValue))
		}
		return fmt.Sprintf("%s %s=%s prev %s create=%v", e.Type, e.Key, e.Value, prev, e.IsCreate())
	}
	var got []string
	next := func() Batch {
		t.Helper()
		select {
		case b := <-w.Batches():
			for _, e := range b.Events {
				got = append(got, describe(e))
			}
			return b
		case <-time.After(10 * time.Second):
			t.Fatalf("no batch; got so far %q", got)
			return Batch{}
		}
	}
	next()
	mustPut(t, direct, "/p/a", "2")
	next()
	mustPut(t, direct, "/p/b", "1")
	next()
	mustDelete(t, direct, "/p/a")
	next()

	p.Cut()
	waitFor(t, "Connected() = false while cut", func() bool { return !w.Connected() })
	mustPut(t, direct, "/p/b", "2")
	mustDelete(t, direct, "/p/gone")
	mustPut(t, direct, "/p/c", "1")
	s.Compact(ctxT(t), direct)
	p.Restore()
	if b := next(); !b.Resync {
		t.Fatalf("batch after the compaction: Resync=false, want a re-read")
	}
	want := []string{
		"PUT /p/a=1 prev absent create=true", "PUT /p/gone=1 prev absent create=true",
		"PUT /p/a=2 prev present(0 bytes) create=false",
		"PUT /p/b=1 prev absent create=true",
		"DELETE /p/a= prev present(0 bytes) create=false",
		"DELETE /p/gone= prev present(0 bytes) create=false",
		"PUT /p/b=2 prev present(0 bytes) create=false", "PUT /p/c=1 prev absent create=true",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	for k, cur := range w.state {
		if len(cur.value) != 0 {
			t.Fatalf("state keeps %d bytes of %s", len(cur.value), k)
		}
	}
}
