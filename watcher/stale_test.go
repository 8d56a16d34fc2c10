package watcher

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/tcpproxy"
)

// TestStaleMemberRewatch: the member a watch runs on freezes (its
// connection stays open, nothing passes: a SIGSTOPped process). The
// watcher must report not Connected within two progress intervals,
// watch again through another endpoint, deliver what was written
// meanwhile, and be Connected again while the member is still frozen.
func TestStaleMemberRewatch(t *testing.T) {
	ms := startCluster(t, 2)
	p := tcpproxy.Start(t, ms[0].endpoint())
	cli := newClient(t, "http://"+p.Addr())
	direct := newClient(t, ms[1].endpoint())
	mustPut(t, direct, "/p/a", "1")
	w := startWatch(t, cli, "/p/", WithProgressInterval(50*time.Millisecond))
	v := newView(t, "/p/")
	v.readUntilEqual(w, direct)
	cli.SetEndpoints("http://"+p.Addr(), ms[1].endpoint())

	p.Stall()
	stalled := time.Now()
	waitFor(t, "Connected() = false with the member frozen", func() bool { return !w.Connected() })
	t.Logf("not Connected %v after the freeze", time.Since(stalled))
	mustPut(t, direct, "/p/b", "1")
	mustDelete(t, direct, "/p/a")
	v.readUntilEqual(w, direct)
	waitFor(t, "Connected() through another member", w.Connected)
	t.Logf("view equal to etcd and Connected %v after the freeze; stats %+v", time.Since(stalled), w.Stats())
	if !p.IsStalled() {
		t.Fatal("proxy not stalled any more")
	}
	p.Unstall()
}

// TestStalledCreationsLeaveNoStream: while the only member is frozen,
// every watch creation times out and is tried again; once it answers, the
// watcher holds one watch stream, not one per attempt (clientv3 keeps the
// stream of a creation cancelled before it took the request open for good
// unless its Watcher is closed).
func TestStalledCreationsLeaveNoStream(t *testing.T) {
	s := etcdtest.Start(t)
	p := tcpproxy.Start(t, s.Endpoints()[0])
	cli := newClient(t, "http://"+p.Addr())
	before := watchStreams(t)
	w := startWatch(t, cli, "/p/", WithProgressInterval(50*time.Millisecond))
	<-w.Batches()

	p.Stall()
	waitFor(t, "Connected() = false with the member frozen", func() bool { return !w.Connected() })
	time.Sleep(3 * time.Second)
	attempts := w.Stats().Watches
	p.Unstall()
	waitFor(t, "Connected() after the thaw", w.Connected)
	t.Logf("%d watch attempts", attempts)
	if attempts < 3 {
		t.Fatalf("only %d watch attempts during 3 s of freeze, want several", attempts)
	}
	// Streams close asynchronously on the server.
	waitFor(t, "one watch stream on the server", func() bool { return watchStreams(t)-before <= 1 })
}

// watchStreams returns etcd's count of open watch streams (every embedded
// server of this process).
func watchStreams(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "etcd_debugging_mvcc_watch_stream_total" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no etcd_debugging_mvcc_watch_stream_total metric")
	return 0
}
