package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/client"
)

// routerOf starts a clusterkit.Router on n's embedded etcd with the
// certificate n keeps in its DataDir, closed by t.Cleanup.
func routerOf(t *testing.T, n *testNode) *clusterkit.Router {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	endpoints, err := n.ck.EtcdEndpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := clusterkit.NewRouter(ctx, clusterkit.RouterOptions{Etcd: client.NodeEtcd(endpoints, n.dir)})
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// forwarded counts the requests nodes forwarded to a primary.
func forwarded(nodes []*testNode) int64 {
	var sum int64
	for _, n := range nodes {
		sum += n.store.forwarded.Load()
	}
	return sum
}

func TestClients(t *testing.T) {
	nodes := formStores(t, 3, 16, ModeSync)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.addr)
	}
	rt := routerOf(t, nodes[0])
	if _, err := client.New(addrs, client.Routed(nil)); err == nil || !strings.Contains(err.Error(), "Router is nil") {
		t.Fatalf("New with Routed(nil): %v, want an error naming the Router", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		opts []client.Option
	}{
		{"thin", nil},
		{"routed", []client.Option{client.Routed(rt)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(addrs, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 50 {
				k := fmt.Sprintf("%s-%d", tc.name, i)
				if err := c.Put(ctx, k, "v"+k); err != nil {
					t.Fatalf("Put %s: %v", k, err)
				}
				if v, found, err := c.Get(ctx, k); err != nil || !found || v != "v"+k {
					t.Fatalf("Get %s: got %q, %v, %v; want %q", k, v, found, err, "v"+k)
				}
				if err := c.Delete(ctx, k); err != nil {
					t.Fatalf("Delete %s: %v", k, err)
				}
				if _, found, err := c.Get(ctx, k); err != nil || found {
					t.Fatalf("Get %s after Delete: found %v, %v; want not found", k, found, err)
				}
			}
		})
	}
	t.Run("routed requests are not forwarded, also after the map changed", func(t *testing.T) {
		c, _ := client.New(addrs, client.Routed(rt))
		defer c.Close()
		put := func(prefix string) {
			t.Helper()
			before := forwarded(nodes)
			for i := range 50 {
				if err := c.Put(ctx, fmt.Sprintf("%s%d", prefix, i), "x"); err != nil {
					t.Fatal(err)
				}
			}
			if after := forwarded(nodes); after != before {
				t.Fatalf("%d of 50 routed writes were forwarded, want 0", after-before)
			}
		}
		put("r")
		// A fourth node takes primaries over: the router follows the
		// map from etcd, the client still goes straight to each primary.
		all := append(nodes, addStore(t, nodes, "node-4", 16, ModeSync))
		waitAgreed(t, all)
		if err := rt.WaitVersion(ctx, all[0].ck.GetCluster().AssignmentVersion); err != nil {
			t.Fatal(err)
		}
		primaryOf4 := 0
		for _, p := range all[0].ck.GetPartitionsForNode("node-4") {
			if p.PrimaryNode == "node-4" {
				primaryOf4++
			}
		}
		if primaryOf4 == 0 {
			t.Fatal("node-4 is primary of nothing")
		}
		nodes = all
		put("s")
	})
	t.Run("a refused request is retried until the context ends", func(t *testing.T) {
		for _, n := range nodes {
			n.store.Drain()
		}
		c, _ := client.New(addrs)
		defer c.Close()
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := c.Put(short, "k", "v"); !errors.Is(err, client.ErrNotApplied) {
			t.Fatalf("Put to draining nodes: got %v, want ErrNotApplied", err)
		}
	})
}
