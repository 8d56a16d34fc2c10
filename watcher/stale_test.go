package watcher

import (
	"testing"
	"time"

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
