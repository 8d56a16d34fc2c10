package clusterkit

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// guardedClient returns a client of eps whose connections a connSet
// dials, and its guard, as a node in embedded mode has them.
func guardedClient(t *testing.T, eps ...string) (*clientv3.Client, *endpointGuard) {
	t.Helper()
	conns := &connSet{}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(conns.dial)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	e := &endpointGuard{cli: cli, conns: conns}
	e.set(eps...)
	return cli, e
}

// TestCutMovesAWatchOffAFrozenMember: a watch whose stream is on a member
// that froze (SIGSTOP) resumes on another member once the guard stops
// using the frozen one, because its connections are cut; a graceful close
// would wait for the hung stream.
func TestCutMovesAWatchOffAFrozenMember(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	frozen, other := c.Members[0], c.Members[1]
	cli, e := guardedClient(t, frozen.ClientURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events := cli.Watch(ctx, "k")
	if _, err := cli.Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, events, "before")

	frozen.Freeze()
	defer frozen.Thaw()
	e.set(other.ClientURL)
	// The others elect a leader first if the frozen member led.
	writer := etcdtest.NewClient(t, other.ClientURL)
	for {
		_, err := writer.Put(ctx, "k", "during")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitValue(t, events, "during")
}

// waitValue waits up to 10 s (the member stays frozen longer) for a put
// of want on events.
func waitValue(t *testing.T, events clientv3.WatchChan, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case wr := <-events:
			for _, ev := range wr.Events {
				if string(ev.Kv.Value) == want {
					return
				}
			}
		case <-deadline:
			t.Fatalf("the watch never saw %q: its stream stayed on the frozen member", want)
		}
	}
}

// TestProbeAvoidsAFrozenMember: the probe marks a frozen member down after
// probeMisses rounds, so the client uses the others, and up again once it
// answers after SIGCONT.
func TestProbeAvoidsAFrozenMember(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	eps := slices.Sorted(slices.Values(c.Endpoints()))
	_, e := guardedClient(t, eps...)
	p := &memberProbe{eps: e, log: zap.NewNop(), conns: map[string]*grpc.ClientConn{}, misses: map[string]int{},
		metrics: &metrics{unansweringMembers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "unanswering"})}}
	defer p.close()
	ctx := context.Background()
	used := func() []string {
		e.mu.Lock()
		defer e.mu.Unlock()
		return slices.Clone(e.used)
	}

	p.round(ctx)
	if got := used(); !slices.Equal(got, eps) {
		t.Fatalf("all members answer, the client uses %v, want %v", got, eps)
	}
	frozen := c.Members[0]
	frozen.Freeze()
	defer frozen.Thaw()
	for range probeMisses {
		p.round(ctx)
	}
	if got := used(); slices.Contains(got, frozen.ClientURL) || len(got) != 2 {
		t.Fatalf("after %d unanswered probes the client uses %v, want the two others than %s", probeMisses, got, frozen.ClientURL)
	}
	frozen.Thaw()
	for deadline := time.Now().Add(15 * time.Second); !slices.Equal(used(), eps); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGCONT the client still uses %v, want %v", used(), eps)
		}
		p.round(ctx)
	}
}
