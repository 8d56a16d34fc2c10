package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/client"
)

func TestClients(t *testing.T) {
	nodes := formStores(t, 3, 16, ModeSync)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.addr)
	}
	if status := getStatus(t, "http://"+addrs[0]+"/clusterkit/cluster"); status != http.StatusOK {
		t.Fatalf("GET /clusterkit/cluster in sync mode: got %d, want 200 (routing clients read the map there)", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		opts []client.Option
	}{
		{"thin", nil},
		{"routed", []client.Option{client.Routed()}},
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
	t.Run("routed requests are not forwarded", func(t *testing.T) {
		before := int64(0)
		for _, n := range nodes {
			before += n.store.forwarded.Load()
		}
		c, _ := client.New(addrs, client.Routed())
		defer c.Close()
		for i := range 50 {
			if err := c.Put(ctx, fmt.Sprintf("r%d", i), "x"); err != nil {
				t.Fatal(err)
			}
		}
		after := int64(0)
		for _, n := range nodes {
			after += n.store.forwarded.Load()
		}
		if after != before {
			t.Fatalf("%d of 50 routed writes were forwarded, want 0", after-before)
		}
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
