package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
)

// endpointsOf returns the etcd client URLs of node's cluster, joined.
func endpointsOf(t *testing.T, node *clusterkit.ClusterKit) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eps, err := node.EtcdEndpoints(ctx)
	if err != nil {
		t.Fatalf("EtcdEndpoints: %v", err)
	}
	return strings.Join(eps, ",")
}

// sameAsNode runs each read-only command through the node at env's
// CLUSTERKIT_NODE and from etcd with etcdArgs, and checks that the two
// answer alike: -o json byte for byte where a node adds nothing of its
// own, status without what only a node knows (its ID, its health).
func sameAsNode(t *testing.T, env map[string]string, etcdArgs []string) {
	t.Helper()
	ctx := context.Background()
	both := func(t *testing.T, args ...string) (viaNode, viaEtcd result) {
		t.Helper()
		viaNode = cli(ctx, env, args...)
		viaEtcd = cli(ctx, nil, append(args, etcdArgs...)...)
		for _, r := range []result{viaNode, viaEtcd} {
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("clusterkit %s: got %v, want exit 0 and nothing on stderr", strings.Join(args, " "), r)
			}
		}
		return viaNode, viaEtcd
	}
	for _, args := range [][]string{
		{"members", "-o", "json"},
		{"partitions", "-o", "json"},
		{"partitions", "node-2", "-o", "json"},
		{"partitions"},
		{"locate", "user:42", "-o", "json"},
		{"locate", "user:42"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			n, e := both(t, args...)
			if n.stdout != e.stdout {
				t.Fatalf("through the node:\n%s\nfrom etcd:\n%s", n.stdout, e.stdout)
			}
		})
	}
	t.Run("members", func(t *testing.T) {
		n, e := both(t, "members")
		if first := func(s string) string { return strings.SplitN(s, "\n", 2)[0] }; first(n.stdout) != first(e.stdout) || strings.Count(n.stdout, "\n") != strings.Count(e.stdout, "\n") {
			t.Fatalf("through the node:\n%s\nfrom etcd:\n%s", n.stdout, e.stdout)
		}
	})
	t.Run("status", func(t *testing.T) {
		n, e := both(t, "status", "-o", "json")
		var sn, se statusJSON
		if err := json.Unmarshal([]byte(n.stdout), &sn); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(e.stdout), &se); err != nil {
			t.Fatal(err)
		}
		if se.Health != nil || se.Node != "" || se.Etcd == "" {
			t.Fatalf("status -o json from etcd: got health %v, node %q, etcd %q; want no health, no node and the endpoints", se.Health, se.Node, se.Etcd)
		}
		sn.Health, sn.Node, se.Etcd = nil, "", ""
		if a, b := fmt.Sprintf("%+v", sn), fmt.Sprintf("%+v", se); a != b {
			t.Fatalf("status -o json:\nthrough the node %s\nfrom etcd        %s", a, b)
		}
		_, e = both(t, "status")
		for _, want := range []string{"read from:", "etcd ", "3 active, 0 unhealthy, 0 offline", "16 × RF 3", "settled", "not read from etcd: ask a node (--node)"} {
			if !strings.Contains(e.stdout, want) {
				t.Fatalf("status from etcd lacks %q:\n%s", want, e.stdout)
			}
		}
	})
	t.Run("unknown node", func(t *testing.T) {
		r := cli(ctx, nil, append([]string{"partitions", "node-9"}, etcdArgs...)...)
		if r.code != exitFailed || !strings.Contains(r.stderr, `no member "node-9"`) {
			t.Fatalf("partitions node-9 from etcd: got %v, want exit 1 naming the members", r)
		}
	})
}

// watchEtcd starts watch in etcd mode; stop cancels it and returns its
// exit code.
func watchEtcd(t *testing.T, out *syncBuffer, args ...string) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"watch"}, args...), func(string) string { return "" }, out, out)
	}()
	t.Cleanup(cancel)
	return func() int { cancel(); return <-done }
}

// The read-only commands from a secure cluster's etcd, with a client
// certificate from cert issue: the same answers as through a node, and
// watch follows a join.
func TestEtcdModeSecure(t *testing.T) {
	nodes := clustertest.Form(t, 3, nil, nil)
	token := clustertest.JoinToken(t, nodes[0])
	env := map[string]string{envNode: clustertest.Addr(nodes[1]), envToken: token}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "certs")

	r := cli(ctx, env, "cert", "issue", "--name", "ops-cli", "--out", dir, "-o", "json")
	var c certJSON
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &c) != nil {
		t.Fatalf("cert issue -o json: got %v", r)
	}
	if c.Cluster != "default" || c.Name != "ops-cli" || len(c.Endpoints) == 0 || c.Cert != filepath.Join(dir, "client.crt") || time.Until(c.NotAfter) < 300*24*time.Hour {
		t.Fatalf("cert issue -o json: got %+v", c)
	}
	for _, f := range []string{c.Cert, c.Key, c.CACert} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want a 0600 file", f, st, err)
		}
	}
	// (The endpoints may have grown since: a member that was a learner.)
	if out := cli(ctx, env, "cert", "issue", "--name", "ops-cli", "--out", dir).stdout; !strings.Contains(out, "read the cluster from etcd with:\n  clusterkit --etcd https://") ||
		!strings.Contains(out, " --cluster default --cert "+c.Cert+" --key "+c.Key+" --cacert "+c.CACert+" status\n") {
		t.Fatalf("cert issue: want the etcd-mode command line:\n%s", out)
	}
	eps := strings.Join(c.Endpoints, ",")
	etcdArgs := []string{"--etcd", eps, "--cert", c.Cert, "--key", c.Key, "--cacert", c.CACert}
	sameAsNode(t, env, etcdArgs)

	var out syncBuffer
	stop := watchEtcd(t, &out, etcdArgs...)
	waitOutput(t, &out, "watching cluster default in etcd "+eps+": 3 members")
	o := clustertest.Options(t, "node-4")
	o.JoinAddr = clustertest.Addr(nodes[0])
	nodes = append(nodes, clustertest.Start(t, o, nil))
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "4 nodes never agreed")
	waitOutput(t, &out, "joined node-4 (address 127.0.0.1:")
	waitOutput(t, &out, fmt.Sprintf("→ v%d: ", nodes[0].GetCluster().AssignmentVersion))
	if code := stop(); code != exitOK {
		t.Fatalf("watch --etcd ended with exit %d:\n%s", code, out.String())
	}
	t.Logf("watch --etcd during the join:\n%s", out.String())

	t.Run("refusals", func(t *testing.T) {
		pin := strings.Split(token, ".")[1]
		for _, tc := range []struct {
			name string
			args []string
			code int
			want string
		}{
			{"no certificate", []string{"status", "--etcd", eps, "--timeout", "2s"}, exitFailed, "get one with 'clusterkit cert issue --name NAME --out DIR' and pass --cert, --key and --cacert"},
			{"wrong cluster", append([]string{"members", "--cluster", "nope"}, etcdArgs...), exitFailed, `check --cluster (the nodes' ClusterName, default "default")`},
			{"admin command", append([]string{"rebalance"}, etcdArgs...), exitUsage, "'clusterkit rebalance' is not available with --etcd, which only reads"},
			{"drain", append([]string{"drain", "node-2"}, etcdArgs...), exitUsage, "ask a node's HTTP API with --node host:port instead"},
			{"cert issue", append([]string{"cert", "issue", "--name", "x", "--out", dir}, etcdArgs...), exitUsage, "not available with --etcd"},
			{"cert without key", []string{"status", "--etcd", eps, "--cert", c.Cert, "--cacert", c.CACert}, exitUsage, "Etcd.CertFile/KeyFile must be set together"},
			{"wrong secret", []string{"cert", "issue", "--name", "x", "--out", dir, "--token", "ck1." + pin + ".wrong"}, exitFailed, "refused the cluster token; pass the cluster's join token (clusterkit token)"},
			{"other CA", []string{"cert", "issue", "--name", "x", "--out", dir, "--token", "ck1." + strings.Repeat("0", 64) + ".x"}, exitFailed, "is --token this cluster's join token"},
			{"bad name", []string{"cert", "issue", "--name", "a/b", "--out", dir}, exitUsage, "ClientCertRequest.Name must be 1 to 64 characters"},
			{"no name", []string{"cert", "issue", "--out", dir}, exitUsage, "cert issue needs --name NAME"},
			{"plain token", []string{"cert", "issue", "--name", "x", "--out", dir, "--token", "test-token"}, exitUsage, "needs the join token ck1."},
			{"http node", []string{"cert", "issue", "--name", "x", "--out", dir, "--node", "http://" + env[envNode]}, exitUsage, "give host:port or https://host:port"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := cli(ctx, env, tc.args...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
					t.Fatalf("clusterkit %s: got %v\nwant exit %d and stderr containing %q", strings.Join(tc.args, " "), r, tc.code, tc.want)
				}
			})
		}
	})
}

// The read-only commands from an InsecurePlaintext cluster's etcd, without
// certificates; watch follows a node's leave.
func TestEtcdModePlaintext(t *testing.T) {
	nodes := clustertest.Form(t, 3, func(o *clusterkit.Options) { o.InsecurePlaintext = true }, nil)
	env := map[string]string{envNode: clustertest.Addr(nodes[1])}
	eps := endpointsOf(t, nodes[0])
	if !strings.HasPrefix(eps, "http://") {
		t.Fatalf("plaintext endpoints %q, want http://", eps)
	}
	sameAsNode(t, env, []string{"--etcd", eps, "--cluster", "default"})

	var out syncBuffer
	stop := watchEtcd(t, &out, "--etcd", eps, "-o", "json")
	waitOutput(t, &out, `"event":"watching"`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := nodes[2].Stop(ctx); err != nil {
		t.Fatalf("Stop node-3: %v", err)
	}
	waitOutput(t, &out, `"event":"member_left","node":"node-3"`)
	if code := stop(); code != exitOK {
		t.Fatalf("watch --etcd -o json ended with exit %d:\n%s", code, out.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e watchEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Event == "" || e.Message == "" {
			t.Fatalf("watch --etcd -o json: line %q is not an event (%v)", line, err)
		}
	}
}

func TestEtcdModeFlags(t *testing.T) {
	closed := "http://" + closedAddr(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"nothing listens", []string{"members", "--etcd", closed, "--timeout", "1s"}, exitFailed, "cannot read cluster \"default\" from etcd at " + closed + ": "},
		{"empty endpoints", []string{"status", "--etcd", " , "}, exitUsage, `invalid --etcd " , ": give the etcd client URLs`},
		{"cert without etcd", []string{"status", "--node", "127.0.0.1:1", "--cert", "c.crt"}, exitUsage, "--cert is for read-only etcd mode"},
		{"cluster without etcd", []string{"members", "--node", "127.0.0.1:1", "--cluster", "x"}, exitUsage, "--cluster is for read-only etcd mode"},
		{"node and etcd", []string{"status", "--etcd", closed, "--node", "127.0.0.1:1"}, exitUsage, "--node is for node mode"},
		{"interval and etcd", []string{"watch", "--etcd", closed, "--interval", "1s"}, exitUsage, "--interval is for node mode"},
		{"bad cluster", []string{"status", "--etcd", closed, "--cluster", "a/b"}, exitUsage, "RouterOptions.ClusterName"},
		{"bad output", []string{"status", "--etcd", closed, "-o", "yaml"}, exitUsage, `invalid --output "yaml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(context.Background(), nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("clusterkit %s: got %v\nwant exit %d and stderr containing %q", strings.Join(tc.args, " "), r, tc.code, tc.want)
			}
		})
	}
}

// BenchmarkMembers is one 'members -o json' of a 3-node cluster, through
// a node's HTTP API and from etcd (a Router's connect, first read and
// close included), with a certificate from cert issue.
func BenchmarkMembers(b *testing.B) {
	nodes := clustertest.Form(b, 3, nil, nil)
	ctx := context.Background()
	cert, err := clusterkit.RequestClientCertificate(ctx, clusterkit.ClientCertRequest{
		NodeAddr: clustertest.Addr(nodes[0]), Token: clustertest.JoinToken(b, nodes[0]), Name: "bench", Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	env := map[string]string{envNode: clustertest.Addr(nodes[1])}
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"node", nil},
		{"etcd", []string{"--etcd", strings.Join(cert.Endpoints, ","), "--cert", cert.CertFile, "--key", cert.KeyFile, "--cacert", cert.CAFile}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				if r := cli(ctx, env, append([]string{"members", "-o", "json"}, mode.args...)...); r.code != exitOK {
					b.Fatal(r)
				}
			}
		})
	}
}
