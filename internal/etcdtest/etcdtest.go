// Package etcdtest starts a real, single-member embedded etcd server for
// tests: fast ticks, random free loopback ports, a temporary data dir, and
// clean-up registered on the test. It is internal so that the lower packages
// (leases, election, watcher) can test against a real etcd without
// depending on one another.
package etcdtest

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/clusterkit-go/clusterkit/internal/freeport"
)

// Server is one embedded etcd member that can be stopped and restarted on
// the same ports and data dir. Its methods are safe for concurrent use.
type Server struct {
	t         testing.TB
	dir       string
	name      string
	clientURL url.URL
	peerURL   url.URL

	mu   sync.Mutex
	etcd *embed.Etcd // nil while stopped
}

// Start starts a new one-member cluster and registers its shutdown with
// t.Cleanup. It fails the test if etcd is not ready within 10 s.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:         t,
		dir:       t.TempDir(),
		name:      "etcdtest",
		clientURL: url.URL{Scheme: "http", Host: freeLoopbackAddr(t)},
		peerURL:   url.URL{Scheme: "http", Host: freeLoopbackAddr(t)},
	}
	t.Cleanup(s.Stop)
	s.Restart()
	return s
}

// Endpoints returns the client URLs to give to clientv3.Config.
func (s *Server) Endpoints() []string { return []string{s.clientURL.String()} }

// Client returns a new client of this server, closed by t.Cleanup.
func (s *Server) Client(t testing.TB, opts ...grpc.DialOption) *clientv3.Client {
	t.Helper()
	return newClient(t, clientv3.Config{Endpoints: s.Endpoints(), DialOptions: opts})
}

// NewClient returns a quiet client of the given endpoints (a server of
// this package, a proxy in front of one, another member), closed by
// t.Cleanup.
func NewClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	return newClient(t, clientv3.Config{Endpoints: endpoints})
}

// newClient returns a quiet client with cfg (a 5 s dial timeout unless
// set), closed by t.Cleanup.
func newClient(t testing.TB, cfg clientv3.Config) *clientv3.Client {
	t.Helper()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	cfg.Logger = zap.NewNop()
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcdtest: new client of %v: %v", cfg.Endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Stop stops the server; it is idempotent. The data dir is kept so that
// Restart brings back the same member with its data.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd == nil {
		return
	}
	s.etcd.Close()
	<-s.etcd.Server.StopNotify()
	s.etcd = nil
}

// Restart starts the server again on the same ports and data dir (or for
// the first time). It is a no-op while the server runs.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd != nil {
		return
	}
	cfg := FastConfig(s.name, s.dir, s.clientURL, s.peerURL, fmt.Sprintf("%s=%s", s.name, s.peerURL.String()))
	var (
		e   *embed.Etcd
		err error
	)
	// The freed port can, rarely, be taken again before etcd binds it, or
	// still be in TIME_WAIT after a Stop; retry briefly.
	for attempt := 0; ; attempt++ {
		e, err = embed.StartEtcd(cfg)
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("etcdtest: start embedded etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(10 * time.Second):
		e.Close()
		s.t.Fatalf("etcdtest: embedded etcd not ready after 10s")
	}
	s.etcd = e
}

// FastConfig is the embed configuration of a quiet test member: ticks of
// 10 ms / election 100 ms, no fsync, the given URLs and initial cluster.
func FastConfig(name, dir string, client, peer url.URL, initialCluster string) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = initialCluster
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	return cfg
}

// Compact compacts the key space up to the current revision (physically),
// so that watches from older revisions fail with ErrCompacted.
func (s *Server) Compact(ctx context.Context, cli *clientv3.Client) int64 {
	s.t.Helper()
	resp, err := cli.Get(ctx, "compact-probe")
	if err != nil {
		s.t.Fatalf("etcdtest: get revision: %v", err)
	}
	rev := resp.Header.Revision
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		s.t.Fatalf("etcdtest: compact at %d: %v", rev, err)
	}
	return rev
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment
// ago, outside the kernel's ephemeral range (see internal/freeport). etcd
// needs concrete peer ports; the tiny race with other explicit picks is
// covered by the retry in Restart.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		t.Fatalf("etcdtest: find a free port: %v", err)
	}
	return addr
}
