package watcher

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// member is one member of a small static embedded etcd cluster, for the
// leader-loss test (internal/etcdtest runs one member only, which cannot
// lose its leader).
type member struct {
	t         *testing.T
	name, dir string
	client    url.URL
	peer      url.URL
	initial   string

	mu   sync.Mutex
	etcd *embed.Etcd
}

// startCluster starts an n-member cluster with fast ticks on loopback,
// stopped by t.Cleanup.
func startCluster(t *testing.T, n int) []*member {
	t.Helper()
	ms := make([]*member, n)
	var initial []string
	for i := range ms {
		m := &member{
			t:      t,
			name:   fmt.Sprintf("m%d", i),
			dir:    t.TempDir(),
			client: url.URL{Scheme: "http", Host: freeAddr(t)},
			peer:   url.URL{Scheme: "http", Host: freeAddr(t)},
		}
		ms[i] = m
		initial = append(initial, fmt.Sprintf("%s=%s", m.name, m.peer.String()))
		t.Cleanup(m.stop)
	}
	for _, m := range ms {
		m.initial = strings.Join(initial, ",")
		m.start(false)
	}
	for _, m := range ms {
		m.waitReady()
	}
	return ms
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (m *member) endpoint() string { return m.client.String() }

// start starts the member (again); with wait it waits until it is ready.
func (m *member) start(wait bool) {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg := etcdtest.FastConfig(m.name, m.dir, m.client, m.peer, m.initial)
	cfg.InitialClusterToken = "watcher-test"
	var err error
	for attempt := 0; ; attempt++ {
		m.etcd, err = embed.StartEtcd(cfg)
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		m.t.Fatalf("start member %s: %v", m.name, err)
	}
	if wait {
		m.waitReadyLocked()
	}
}

func (m *member) waitReady() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.waitReadyLocked()
}

func (m *member) waitReadyLocked() {
	m.t.Helper()
	select {
	case <-m.etcd.Server.ReadyNotify():
	case <-time.After(eventually):
		m.t.Fatalf("member %s not ready after %s", m.name, eventually)
	}
}

// stop stops the member, keeping its data; it is idempotent.
func (m *member) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd == nil {
		return
	}
	m.etcd.Close()
	<-m.etcd.Server.StopNotify()
	m.etcd = nil
}

// TestLeaderLoss: the member the watcher talks to loses its leader (the
// other member of a two-member cluster stops), so its require-leader watch
// is canceled; the watcher must retry with backoff, not spin, report not
// Connected, and resume without loss once the leader is back.
func TestLeaderLoss(t *testing.T) {
	ms := startCluster(t, 2)
	a, b := ms[0], ms[1]
	cli := newClient(t, a.endpoint())
	direct := newClient(t, a.endpoint())
	mustPut(t, direct, "/p/a", "1")
	w := startWatch(t, cli, "/p/", WithProgressInterval(50*time.Millisecond))
	v := newView(t, "/p/")
	mustPut(t, direct, "/p/b", "1")
	v.readUntilEqual(w, direct)

	stopped := time.Now()
	b.stop()
	t.Logf("second member stopped in %s", time.Since(stopped))
	waitFor(t, "a re-watch after the leader was lost", func() bool { return w.Stats().Watches >= 2 })
	waitFor(t, "Connected() = false without a leader", func() bool { return !w.Connected() })
	t.Logf("re-watching and not Connected %s after the second member began to stop", time.Since(stopped))

	// No busy loop: with backoff from 50 ms doubling to 2 s, a 3 s window
	// holds about 5 attempts. CPU starvation can only lower the count.
	before := w.Stats().Watches
	time.Sleep(3 * time.Second)
	if n := w.Stats().Watches - before; n > 15 {
		t.Fatalf("%d watch attempts in 3 s without a leader: want a bounded backoff (<= 15)", n)
	} else {
		t.Logf("%d watch attempts in 3 s without a leader", n)
	}

	b.start(true)
	back := time.Now()
	mustPut(t, direct, "/p/a", "2")
	mustDelete(t, direct, "/p/b")
	mustPut(t, direct, "/p/c", "1")
	v.readUntilEqual(w, direct)
	waitFor(t, "Connected() with the leader back", w.Connected)
	t.Logf("view equal to etcd %s after the second member restarted; stats %+v", time.Since(back), w.Stats())
}
