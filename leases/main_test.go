package leases_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/freeport"
	"github.com/clusterkit-go/clusterkit/leases"
)

func TestMain(m *testing.M) {
	etcdtest.RunMemberIfChild() // the members of etcdtest.StartCluster
	goleak.VerifyTestMain(m)
}

const memberKey = "/clusterkit/test/members/node-1"

// timeout bounds one etcd call made by a test.
const timeout = 10 * time.Second

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// newCluster starts an etcdtest server and returns it with one client.
func newCluster(t *testing.T) (*etcdtest.Server, *clientv3.Client) {
	t.Helper()
	srv := etcdtest.Start(t)
	return srv, srv.Client(t)
}

// mustRegister registers key or fails the test; t.Cleanup closes it.
func mustRegister(t *testing.T, cli *clientv3.Client, key, value string, ttl time.Duration, opts ...leases.Option) *leases.Registration {
	t.Helper()
	r, err := leases.Register(ctxT(t), cli, key, []byte(value), ttl, opts...)
	if err != nil {
		t.Fatalf("Register(%q, ttl %s): %v", key, ttl, err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// event is one watch event on a key as a test observer saw it.
type event struct {
	typ   mvccpb.Event_EventType
	value string
	lease clientv3.LeaseID
	at    time.Time
}

// watchKey watches key from now on and forwards its events, stamped with
// the time they arrived. The goroutine is stopped by t.Cleanup.
func watchKey(t *testing.T, cli *clientv3.Client, key string) <-chan event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wch := cli.Watch(ctx, key, clientv3.WithCreatedNotify())
	select {
	case wresp := <-wch:
		if !wresp.Created {
			cancel()
			t.Fatalf("watch %q: first response is not the created notification: %+v", key, wresp)
		}
	case <-time.After(timeout):
		cancel()
		t.Fatalf("watch %q: not created after %s", key, timeout)
	}
	out := make(chan event, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wresp := range wch {
			now := time.Now()
			for _, ev := range wresp.Events {
				out <- event{typ: ev.Type, value: string(ev.Kv.Value), lease: clientv3.LeaseID(ev.Kv.Lease), at: now}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

// nextEvent waits (up to within) for the next event.
func nextEvent(t *testing.T, ch <-chan event, within time.Duration) event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(within):
		t.Fatalf("no watch event within %s", within)
		return event{}
	}
}

// waitDone waits (up to within) for r.Done and returns how long it took.
func waitDone(t *testing.T, r *leases.Registration, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-r.Done():
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("Done not closed within %s", within)
		return 0
	}
}

// getKey returns the key's value and lease; ok is false if it is absent.
func getKey(t *testing.T, cli *clientv3.Client, key string) (value string, lease clientv3.LeaseID, ok bool) {
	t.Helper()
	resp, err := cli.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), clientv3.LeaseID(resp.Kvs[0].Lease), true
}

// leaseAlive reports whether etcd still has the lease.
func leaseAlive(t *testing.T, cli *clientv3.Client, id clientv3.LeaseID) bool {
	t.Helper()
	resp, err := cli.TimeToLive(ctxT(t), id)
	if err != nil {
		t.Fatalf("TimeToLive(%x): %v", id, err)
	}
	return resp.TTL >= 0
}

// leaseIDs lists every lease on the server.
func leaseIDs(t *testing.T, cli *clientv3.Client) []clientv3.LeaseID {
	t.Helper()
	resp, err := cli.Leases(ctxT(t))
	if err != nil {
		t.Fatalf("Leases: %v", err)
	}
	var ids []clientv3.LeaseID
	for _, l := range resp.Leases {
		ids = append(ids, l.ID)
	}
	return ids
}

// startEtcd starts a one-member embedded etcd in dir with the given
// election timeout (tick = election/10) and returns it with its client
// endpoint. It is for tests that need other ticks than etcdtest's, and for
// examples, which have no *testing.T.
func startEtcd(dir string, electionMs uint) (*embed.Etcd, string, error) {
	peer, err := freeport.Addr("127.0.0.1")
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "leasestest"
	cfg.Dir = dir
	cfg.TickMs = electionMs / 10
	cfg.ElectionMs = electionMs
	clientURL := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	peerURL := url.URL{Scheme: "http", Host: peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peerURL.String())
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(timeout):
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd not ready after %s", timeout)
	}
	return e, "http://" + e.Clients[0].Addr().String(), nil
}

func newClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
}
