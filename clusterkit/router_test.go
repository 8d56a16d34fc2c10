package clusterkit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// formWithDirs forms n nodes and returns them with node-1's DataDir.
func formWithDirs(t testing.TB, n int) ([]*clusterkit.ClusterKit, string) {
	var first string
	nodes := clustertest.Form(t, n, func(o *clusterkit.Options) {
		if first == "" {
			first = o.DataDir
		}
	}, nil)
	return nodes, first
}

// routerEtcd is the etcd configuration of a router for node's cluster: the
// embedded members' client URLs and, since embedded etcd requires a
// client certificate of the cluster CA, the certificate of the node whose
// DataDir is dir.
func routerEtcd(t testing.TB, node *clusterkit.ClusterKit, dir string) clusterkit.EtcdConfig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	endpoints, err := node.EtcdEndpoints(ctx)
	if err != nil {
		t.Fatalf("EtcdEndpoints: %v", err)
	}
	cert, pool, err := pki.Dir(filepath.Join(dir, "tls")).LoadNode()
	if err != nil {
		t.Fatalf("node certificate: %v", err)
	}
	return clusterkit.EtcdConfig{Endpoints: endpoints, TLS: pki.ClientConfig(cert, pool)}
}

// routerFor starts a Router on node's etcd, closed by t.Cleanup.
func routerFor(t *testing.T, node *clusterkit.ClusterKit, dir string) *clusterkit.Router {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := clusterkit.NewRouter(ctx, clusterkit.RouterOptions{Etcd: routerEtcd(t, node, dir)})
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// sameRouting reports whether r answers every partition as node does.
func sameRouting(r *clusterkit.Router, node *clusterkit.ClusterKit) error {
	c := node.GetCluster()
	if r.Version() != c.AssignmentVersion {
		return fmt.Errorf("router at map version %d, node at %d", r.Version(), c.AssignmentVersion)
	}
	for i := range c.Partitions {
		key := fmt.Sprintf("key-%d", i)
		want, _ := node.GetPartition(key)
		got, err := r.GetPartition(key)
		if err != nil {
			return fmt.Errorf("GetPartition(%q): %v", key, err)
		}
		if got.Index != want.Index || got.Epoch != want.Epoch || got.PrimaryNode != want.PrimaryNode {
			return fmt.Errorf("key %q: router says partition %d epoch %d primary %s, node says %d epoch %d primary %s",
				key, got.Index, got.Epoch, got.PrimaryNode, want.Index, want.Epoch, want.PrimaryNode)
		}
		if p, q := r.GetPrimary(got), node.GetPrimary(want); p == nil || p.ID != q.ID || p.Addr != q.Addr {
			return fmt.Errorf("partition %d: router primary %v, node primary %v", got.Index, p, q)
		}
		ids := func(ns []clusterkit.Node) []string {
			var out []string
			for _, n := range ns {
				out = append(out, n.ID)
			}
			return out
		}
		if a, b := ids(r.GetNodes(got)), ids(node.GetNodes(want)); !slices.Equal(a, b) {
			return fmt.Errorf("partition %d: router nodes %v, node nodes %v", got.Index, a, b)
		}
		if a, b := ids(r.GetReplicas(got)), ids(node.GetReplicas(want)); !slices.Equal(a, b) {
			return fmt.Errorf("partition %d: router replicas %v, node replicas %v", got.Index, a, b)
		}
	}
	return nil
}

// A Router follows the map without joining: it is not a member, it
// answers every lookup as the nodes do, and it follows a join and a crash.
func TestRouterFollowsJoinAndCrash(t *testing.T) {
	nodes, dir := formWithDirs(t, 3)
	r := routerFor(t, nodes[0], dir)
	clustertest.Eventually(t, 10*time.Second, func() bool { return sameRouting(r, nodes[0]) == nil }, "router never matched the nodes")
	if got := len(r.Nodes()); got != 3 {
		t.Fatalf("router sees %d members, want 3 (it must not register itself)", got)
	}
	if r.Leader() == "" {
		t.Fatal("router sees no leader")
	}

	o := clustertest.Options(t, "node-4")
	o.JoinAddr = clustertest.Addr(nodes[0])
	nodes = append(nodes, clustertest.Start(t, o, nil))
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "4 nodes never agreed")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitVersion(ctx, nodes[0].GetCluster().AssignmentVersion); err != nil {
		t.Fatalf("WaitVersion after join: %v", err)
	}
	if err := sameRouting(r, nodes[0]); err != nil {
		t.Fatalf("after join: %v", err)
	}

	nodes[3].Halt()
	live := nodes[:3]
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(live...) }, "survivors never agreed")
	clustertest.Eventually(t, 10*time.Second, func() bool { return sameRouting(r, live[0]) == nil }, "router never matched after the crash")
	for _, n := range r.Nodes() {
		if n.ID == "node-4" {
			t.Fatal("router still lists the crashed node-4")
		}
	}

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.Close() // idempotent
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if _, err := r.GetPartition("k"); err != nil {
		t.Fatalf("after Close the lookups must answer from the last map: %v", err)
	}
}

func TestRouterOptionsAndMissingCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		opts  clusterkit.RouterOptions
		field string
	}{
		{"no endpoints", clusterkit.RouterOptions{}, "Etcd.Endpoints"},
		{"bad cluster name", clusterkit.RouterOptions{ClusterName: "a/b", Etcd: clusterkit.EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}}}, "ClusterName"},
		{"cert without key", clusterkit.RouterOptions{Etcd: clusterkit.EtcdConfig{Endpoints: []string{"https://127.0.0.1:1"}, CertFile: "c.crt"}}, "Etcd.CertFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clusterkit.NewRouter(ctx, tc.opts)
			if !errors.Is(err, clusterkit.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("NewRouter error = %v, want ErrInvalidOptions naming %s", err, tc.field)
			}
		})
	}

	nodes, dir := formWithDirs(t, 1)
	// The node's certificate files as Etcd.CertFile/KeyFile/CAFile: the
	// router connects (and finds no such cluster).
	files := routerEtcd(t, nodes[0], dir)
	tlsDir := pki.Dir(filepath.Join(dir, "tls"))
	files.TLS, files.CertFile, files.KeyFile, files.CAFile = nil, tlsDir.Path(pki.CertFile), tlsDir.Path(pki.KeyFile), tlsDir.Path(pki.CAFile)
	_, err := clusterkit.NewRouter(ctx, clusterkit.RouterOptions{ClusterName: "other", Etcd: files})
	if !errors.Is(err, clusterkit.ErrNotFound) || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("NewRouter for a cluster that does not exist: %v, want ErrNotFound naming it", err)
	}
}

// BenchmarkRouterGetPartition: a Router's lookup costs what a node's does.
func BenchmarkRouterGetPartition(b *testing.B) {
	nodes, dir := formWithDirs(b, 1)
	r, err := clusterkit.NewRouter(context.Background(), clusterkit.RouterOptions{Etcd: routerEtcd(b, nodes[0], dir)})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p, _ := r.GetPartition(keys[i&1023])
		if r.GetPrimary(p) == nil {
			b.Fatal("no primary")
		}
	}
}
