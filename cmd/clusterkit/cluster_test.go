package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
)

// TestAgainstCluster runs every command against a real 3-node cluster:
// the read-only ones, then watch while a fourth node joins, the admin
// ones, and watch -o json while the fourth node is removed.
func TestAgainstCluster(t *testing.T) {
	var caFile string // node-1's copy of the cluster CA certificate
	nodes := clustertest.Form(t, 3, func(o *clusterkit.Options) {
		if caFile == "" {
			caFile = filepath.Join(o.DataDir, "tls", "ca.crt")
		}
	}, nil)
	ctx := context.Background()
	env := map[string]string{envNode: clustertest.Addr(nodes[1])} // any node answers
	c := nodes[0].GetCluster()

	ok := func(t *testing.T, args ...string) result {
		t.Helper()
		r := cli(ctx, env, args...)
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("clusterkit %s: got %v\nwant exit 0 and nothing on stderr", strings.Join(args, " "), r)
		}
		return r
	}
	decode := func(t *testing.T, r result, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			t.Fatalf("-o json output does not decode into %T: %v\n%s", v, err, r.stdout)
		}
	}

	t.Run("status", func(t *testing.T) {
		var s statusJSON
		decode(t, ok(t, "status", "-o", "json"), &s)
		if s.Cluster != "default" || s.Node != "node-2" || s.Leader != c.Leader || s.Members["active"] != 3 ||
			s.PartitionCount != 16 || s.ReplicationFactor != 3 || !s.Settled || s.Health == nil || s.Health.Status != "healthy" {
			t.Fatalf("status -o json: got %+v (health %+v); want cluster default asked on node-2, leader %s, 3 active, 16 × 3, settled, healthy", s, s.Health, c.Leader)
		}
		out := ok(t, "status").stdout
		for _, want := range []string{"leader:", c.Leader, "3 active, 0 unhealthy, 0 offline", "16 × RF 3", "settled", "health:", "healthy", "node-2 handoffs:"} {
			if !strings.Contains(out, want) {
				t.Fatalf("status: output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("members", func(t *testing.T) {
		var ms []memberJSON
		decode(t, ok(t, "members", "-o", "json"), &ms)
		var ids []string
		total := holding{}
		leaders := 0
		for _, m := range ms {
			ids = append(ids, m.ID)
			total.Primaries += m.Primaries
			total.Replicas += m.Replicas
			if m.Leader {
				leaders++
				if m.ID != c.Leader {
					t.Fatalf("members: %s is marked leader, want %s", m.ID, c.Leader)
				}
			}
			if m.State != "active" || m.Address != c.NodeAddr(m.ID) || m.Incarnation == 0 || m.Started.IsZero() {
				t.Fatalf("members: got %+v, want active at %s with an incarnation and a start time", m, c.NodeAddr(m.ID))
			}
		}
		if strings.Join(ids, ",") != "node-1,node-2,node-3" || leaders != 1 || total.Primaries != 16 || total.Replicas != 32 {
			t.Fatalf("members: got %v, %d leaders, %+v held; want node-1..3, one leader, 16 primaries and 32 replicas", ids, leaders, total)
		}
		lines := strings.Split(strings.TrimSpace(ok(t, "members").stdout), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "NODE") || !strings.HasPrefix(lines[1], "node-1 ") {
			t.Fatalf("members: got %d lines, want a header and 3 rows:\n%s", len(lines), strings.Join(lines, "\n"))
		}
	})

	t.Run("partitions", func(t *testing.T) {
		var all []partitionJSON
		decode(t, ok(t, "partitions", "-o", "json"), &all)
		if len(all) != 16 {
			t.Fatalf("partitions: got %d, want 16", len(all))
		}
		for i, p := range all {
			want := c.Partitions[i]
			if p.ID != want.ID || p.Primary != want.PrimaryNode || strings.Join(p.Replicas, ",") != strings.Join(want.ReplicaNodes, ",") || p.Epoch != want.Epoch || p.Role != "" {
				t.Fatalf("partitions[%d]: got %+v, want %+v", i, p, want)
			}
		}
		var mine []partitionJSON
		decode(t, ok(t, "partitions", "node-3", "-o", "json"), &mine)
		wantN := 0
		for _, p := range c.Partitions {
			if p.PrimaryNode == "node-3" || strings.Contains(","+strings.Join(p.ReplicaNodes, ",")+",", ",node-3,") {
				wantN++
			}
		}
		if len(mine) != wantN {
			t.Fatalf("partitions node-3: got %d, want %d", len(mine), wantN)
		}
		for _, p := range mine {
			if p.Role != p.role("node-3") || p.Role == "" {
				t.Fatalf("partitions node-3: %s has role %q, want %q", p.ID, p.Role, p.role("node-3"))
			}
		}
		if out := ok(t, "partitions", "node-3").stdout; !strings.HasPrefix(strings.Join(strings.Fields(out), " "), "PARTITION ROLE PRIMARY REPLICAS INCOMING EPOCH") {
			t.Fatalf("partitions node-3: want a ROLE column:\n%s", out)
		}
		r := cli(ctx, env, "partitions", "node-9")
		if r.code != exitFailed || !strings.Contains(r.stderr, `no member "node-9"`) || !strings.Contains(r.stderr, "node-1, node-2, node-3") {
			t.Fatalf("partitions node-9: got %v, want exit 1 naming the members", r)
		}
	})

	t.Run("locate", func(t *testing.T) {
		want, _ := nodes[0].GetPartition("user:42")
		var p partitionView
		decode(t, ok(t, "locate", "user:42", "-o", "json"), &p)
		if p.ID != want.ID || p.Primary != want.PrimaryNode || p.Key == nil || *p.Key != "user:42" || len(p.Nodes) != 3 || p.Nodes[0].ID != want.PrimaryNode {
			t.Fatalf("locate user:42: got %+v, want %s with primary %s first among 3 nodes", p, want.ID, want.PrimaryNode)
		}
		out := ok(t, "locate", "user:42").stdout
		if !strings.Contains(out, "partition:    "+want.ID) || !strings.Contains(out, want.PrimaryNode+" ("+c.NodeAddr(want.PrimaryNode)+")") {
			t.Fatalf("locate user:42: want %s and its primary's address:\n%s", want.ID, out)
		}
	})

	// A node's API mounted under a prefix, behind a switch that makes it
	// answer 503 as a node cut off from etcd does.
	var down atomic.Bool
	api := nodes[1].Handler()
	srv := httptest.NewServer(http.StripPrefix("/ck", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"this node is not connected to etcd"}`))
			return
		}
		api.ServeHTTP(w, r)
	})))
	defer srv.Close()

	t.Run("prefixed URL", func(t *testing.T) {
		if out := ok(t, "status", "--node", srv.URL+"/ck/").stdout; !strings.Contains(out, "asked node:       node-2") {
			t.Fatalf("status --node %s/ck/: got\n%s", srv.URL, out)
		}
		r := cli(ctx, env, "members", "--node", srv.URL)
		if r.code != exitFailed || !strings.Contains(r.stderr, "does not serve GET /cluster: is it a ClusterKit node, and does --node include the API's path prefix?") {
			t.Fatalf("members --node %s (no prefix): got %v, want exit 1 asking about the prefix", srv.URL, r)
		}
	})

	t.Run("watch loses contact", func(t *testing.T) {
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		var out syncBuffer
		done := make(chan int)
		go func() {
			done <- run(watchCtx, []string{"watch", "--node", srv.URL + "/ck", "--interval", "50ms"}, func(k string) string { return env[k] }, &out, &out)
		}()
		waitOutput(t, &out, "watching cluster default through node-2")
		down.Store(true)
		waitOutput(t, &out, "lost contact: GET /cluster: 503: this node is not connected to etcd; the node cannot answer now")
		down.Store(false)
		waitOutput(t, &out, "back in contact with "+srv.URL+"/ck")
		stopWatch()
		if code := <-done; code != exitOK || strings.Count(out.String(), "lost contact") != 1 {
			t.Fatalf("watch: exit %d, want 0 and one lost-contact line:\n%s", code, out.String())
		}
	})

	// watch follows a join.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchOut syncBuffer
	watchDone := make(chan int)
	go func() {
		watchDone <- run(watchCtx, []string{"watch", "--interval", "100ms"}, func(k string) string { return env[k] }, &watchOut, &watchOut)
	}()
	waitOutput(t, &watchOut, "watching cluster default through node-2: 3 members")
	o := clustertest.Options(t, "node-4")
	o.JoinAddr = clustertest.Addr(nodes[0])
	nodes = append(nodes, clustertest.Start(t, o, nil))
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "4 nodes never agreed")
	waitOutput(t, &watchOut, "joined node-4 (address 127.0.0.1:")
	waitOutput(t, &watchOut, fmt.Sprintf("→ v%d: ", nodes[1].GetCluster().AssignmentVersion))
	stopWatch()
	if code := <-watchDone; code != exitOK {
		t.Fatalf("watch ended with exit %d, want 0:\n%s", code, watchOut.String())
	}
	t.Logf("watch during the join:\n%s", watchOut.String())

	t.Run("rebalance", func(t *testing.T) {
		token := clustertest.JoinToken(t, nodes[0])
		pin := strings.Split(token, ".")[1]
		r := cli(ctx, env, "rebalance", "--token", "ck1."+pin+".wrong")
		if r.code != exitFailed || !strings.Contains(r.stderr, "401: missing or wrong cluster token; pass the cluster's ClusterToken with --token or CLUSTERKIT_TOKEN") {
			t.Fatalf("rebalance with a wrong token: got %v, want exit 1 saying how to pass the token", r)
		}
		r = cli(ctx, env, "rebalance", "--token", "test-token") // the right secret, over plain http
		if r.code != exitFailed || !strings.Contains(r.stderr, "403: the cluster token is not accepted over plain HTTP: use https://") ||
			!strings.Contains(r.stderr, "--ca-file") {
			t.Fatalf("rebalance with a plain token over http: got %v, want exit 1 pointing at https", r)
		}
		other := strings.Repeat("0", 64)
		r = cli(ctx, env, "rebalance", "--token", "ck1."+other+".test-token")
		if r.code != exitFailed || !strings.Contains(r.stderr, "pin") {
			t.Fatalf("rebalance with a token pinning another CA: got %v, want exit 1 naming the pin", r)
		}
		for _, args := range [][]string{
			{"--ca-file", caFile, "--token", "test-token"},
			{"--insecure-skip-tls-verify", "--token", "test-token"},
		} {
			if out := ok(t, append([]string{"rebalance"}, args...)...).stdout; !strings.HasPrefix(out, "rebalance started") {
				t.Fatalf("rebalance %v: got %q", args, out)
			}
		}
		env[envToken] = token
		if out := ok(t, "rebalance").stdout; !strings.HasPrefix(out, "rebalance started (asked node-2)") {
			t.Fatalf("rebalance: got %q", out)
		}
		var body map[string]string
		decode(t, ok(t, "rebalance", "-o", "json"), &body)
		if body["status"] != "started" {
			t.Fatalf("rebalance -o json: got %v", body)
		}
	})

	t.Run("remove", func(t *testing.T) {
		r := cli(ctx, env, "remove", "node-9")
		if r.code != exitFailed || !strings.Contains(r.stderr, `"node-9" is not a live member`) || !strings.Contains(r.stderr, "clusterkit members") {
			t.Fatalf("remove node-9: got %v, want exit 1 pointing at clusterkit members", r)
		}
		r = cli(ctx, env, "remove", "bad/id")
		if r.code != exitUsage || !strings.Contains(r.stderr, "invalid node ID") {
			t.Fatalf("remove bad/id: got %v, want exit 2 naming the invalid ID", r)
		}

		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		var events syncBuffer
		done := make(chan int)
		go func() {
			done <- run(watchCtx, []string{"watch", "-o", "json", "--interval", "100ms"}, func(k string) string { return env[k] }, &events, &events)
		}()
		waitOutput(t, &events, `"event":"watching"`)
		if out := ok(t, "remove", "node-4").stdout; out != "removed node-4\n" {
			t.Fatalf("remove node-4: got %q", out)
		}
		clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes[:3]...) }, "node-4 was never removed")
		waitOutput(t, &events, `"event":"member_left","node":"node-4"`)
		stopWatch()
		if code := <-done; code != exitOK {
			t.Fatalf("watch -o json ended with exit %d", code)
		}
		t.Logf("watch -o json during the removal:\n%s", events.String())
		for _, line := range strings.Split(strings.TrimSpace(events.String()), "\n") {
			var e watchEvent
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.Event == "" || e.Message == "" || e.Time.IsZero() {
				t.Fatalf("watch -o json: line %q is not an event (%v)", line, err)
			}
		}
	})
}

// waitOutput waits until out contains want.
func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	clustertest.Eventually(t, 20*time.Second, func() bool { return strings.Contains(out.String(), want) },
		"the output never contained %q:\n%s", want, out)
}
