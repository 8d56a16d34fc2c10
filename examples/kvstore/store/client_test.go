package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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
		// The context ends after the third refusal has been read in full,
		// so that it never ends while an attempt is in flight (which would
		// rightly make the outcome unknown).
		short, cancel := context.WithCancel(ctx)
		defer cancel()
		refusals := &cancelAfterRefusals{next: http.DefaultTransport, left: 3, cancel: cancel}
		c, _ := client.New(addrs, client.WithHTTPClient(&http.Client{Transport: refusals}))
		defer c.Close()
		if err := c.Put(short, "k", "v"); !errors.Is(err, client.ErrNotApplied) {
			t.Fatalf("Put to draining nodes: got %v, want ErrNotApplied", err)
		}
		if refusals.seen < 3 {
			t.Fatalf("Put to draining nodes: %d attempts, want at least 3 (retried until the context ended)", refusals.seen)
		}
	})
}

// cancelAfterRefusals is an http.RoundTripper that reads each 503 answer
// in full and, after left of them, cancels the request's context before it
// hands the answer on. Used by one client at a time (no locking).
type cancelAfterRefusals struct {
	next   http.RoundTripper
	left   int
	seen   int
	cancel context.CancelFunc
}

func (r *cancelAfterRefusals) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if r.seen++; r.seen >= r.left {
		r.cancel()
	}
	return resp, nil
}
