package clusterkit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/placement"
)

// decodeErrors returns clusterkit_state_decode_errors_total{key_kind=kind}.
func decodeErrors(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "clusterkit_state_decode_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "key_kind", kind) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestCorruptStateIsIgnoredAndRepaired writes unusable values with a plain
// etcd client under a live cluster's prefix: every node ignores each one
// (one count per node), keeps serving its last good map and agrees again
// once the leader has rewritten what it must.
func TestCorruptStateIsIgnoredAndRepaired(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	var nodes []*clusterkit.ClusterKit
	for i, reg := range regs {
		o := externalOptions(t, srv, fmt.Sprintf("node-%d", i+1))
		o.Registerer = reg
		nodes = append(nodes, clustertest.Start(t, o, nil))
	}
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "nodes never agreed")
	root := "/clusterkit/default/" // clustertest.Options leaves ClusterName at its default
	version := func() int64 { return nodes[0].GetMetrics().AssignmentVersion }

	cases := []struct {
		name, kind, key, value string
	}{
		{"malformed meta", "map_meta", "map/meta", `{"f":2,"v":`},
		{"meta of an unknown format", "map_meta", "map/meta", `{"f":99,"v":100000,"pc":16,"cs":8}`},
		{"meta of another partition count", "map_meta", "map/meta", `{"f":2,"v":100000,"pc":4096,"cs":8}`},
		{"malformed chunk", "map_chunk", "map/p/0", `{"v":100000,"p":"x"}`},
		{"chunk of the wrong size", "map_chunk", "map/p/1", `{"v":100000,"p":[[1,1,0,-1]]}`},
		{"chunk with an old tag", "map_chunk", "map/p/0", `{"v":1,"p":[[1,1,0,-1],[1,1,0,-1],[1,1,0,-1],[1,1,0,-1],[1,1,0,-1],[1,1,0,-1],[1,1,0,-1],[1,1,0,-1]]}`},
		{"malformed node slot", "map_node", "map/n/0", `[]`},
		{"member with a bad address", "member", "members/ghost", `{"id":"ghost","addr":"no-port","state":"active"}`},
		{"malformed failing handoffs", "handoffs", "handoffs/ghost", `{"failing":[{"p":`},
		{"failing handoff of no partition", "handoffs", "handoffs/ghost", `{"failing":[{"p":99,"since":"2026-01-01T00:00:00Z"}]}`},
		{"format-1 map after the move", "assignment", "assignment", `{"v":1,"nodes":["node-1"],"p":[]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := version()
			counts := make([]float64, len(regs))
			for i, reg := range regs {
				counts[i] = decodeErrors(t, reg, c.kind)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := cli.Put(ctx, root+c.key, c.value); err != nil {
				t.Fatal(err)
			}
			for i, reg := range regs {
				clustertest.Eventually(t, 10*time.Second, func() bool { return decodeErrors(t, reg, c.kind) == counts[i]+1 },
					"node-%d never counted the %s value", i+1, c.kind)
			}
			for _, n := range nodes {
				if _, err := n.GetPartition("k"); err != nil {
					t.Fatalf("%s stopped serving: %v", n.GetMyNodeID(), err)
				}
			}
			if strings.HasPrefix(c.key, "members/") || strings.HasPrefix(c.key, "handoffs/") {
				if _, err := cli.Delete(ctx, root+c.key); err != nil {
					t.Fatal(err)
				}
				for _, n := range nodes {
					if hs := n.ClusterFailingHandoffs(); len(hs) != 0 {
						t.Fatalf("%s reports failing handoffs %+v", n.GetMyNodeID(), hs)
					}
					if len(n.GetCluster().Nodes) != 2 {
						t.Fatalf("%s counts %d members, want 2", n.GetMyNodeID(), len(n.GetCluster().Nodes))
					}
				}
				return
			}
			// The leader repairs: a new version that every node applies.
			clustertest.Eventually(t, 10*time.Second, func() bool {
				return version() > before && clustertest.Agreed(nodes...)
			}, "no repair after the %s value (version %d)", c.kind, version())
			for i, reg := range regs {
				if got := decodeErrors(t, reg, c.kind); got != counts[i]+1 {
					t.Errorf("node-%d counted %v %s errors, want %v", i+1, got, c.kind, counts[i]+1)
				}
			}
		})
	}
}

// TestMalformedReadyRecordIsIgnoredByTheLeader overwrites, with a plain
// etcd client, the ready record of a joining node whose handoffs are held
// with a malformed value. Only the planner decodes other nodes' ready
// records: the leader logs and counts it once (a later round or preview
// over the same revision does not count it again), a follower only when
// it previews a plan, nobody stops serving; once the node, released,
// writes its record again, the leader completes its handoffs and all
// agree.
func TestMalformedReadyRecordIsIgnoredByTheLeader(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()}
	release := make(chan struct{})
	var nodes []*clusterkit.ClusterKit
	for i, reg := range regs {
		o := externalOptions(t, srv, fmt.Sprintf("node-%d", i+1))
		o.Registerer = reg
		var configure func(*clusterkit.ClusterKit)
		if i == 2 {
			configure = func(ck *clusterkit.ClusterKit) { clustertest.HoldHandoffs(ck, release) }
		}
		nodes = append(nodes, clustertest.Start(t, o, configure))
		if i == 1 {
			clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "node-1 and node-2 never agreed")
		}
	}
	third := nodes[2]
	clustertest.Eventually(t, 10*time.Second, func() bool { return third.GetMetrics().IncomingPartitions > 0 }, "node-3 never became incoming")
	leader, follower := -1, -1
	for i, n := range nodes {
		if n.IsLeader() {
			leader = i
		} else if follower < 0 {
			follower = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader")
	}
	count := func(i int) float64 { return decodeErrors(t, regs[i], "ready") }
	if count(leader) != 0 || count(follower) != 0 {
		t.Fatalf("ready errors before the malformed value: leader %v, follower %v", count(leader), count(follower))
	}

	ctx := contextTimeout(t, 10*time.Second)
	root := "/clusterkit/default/"
	if _, err := cli.Put(ctx, root+"ready/node-3", `{"0":`); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return count(leader) == 1 }, "the leader never counted the malformed ready record")
	if count(follower) != 0 {
		t.Fatalf("%s decoded another node's ready record without previewing", nodes[follower].GetMyNodeID())
	}
	// A later change (a good record of no member) is another leader
	// round; a preview on the leader reads through the same cache.
	if _, err := cli.Put(ctx, root+"ready/ghost", `{}`); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{leader, follower, follower} {
		if _, err := nodes[i].PreviewPlan(clusterkit.PlanChange{}); err != nil {
			t.Fatalf("preview on %s: %v", nodes[i].GetMyNodeID(), err)
		}
	}
	if count(leader) != 1 || count(follower) != 1 {
		t.Fatalf("ready errors after previews: leader %v, follower %v; want 1 each (one per node and revision)", count(leader), count(follower))
	}
	for _, n := range nodes {
		if _, err := n.GetPartition("k"); err != nil {
			t.Fatalf("%s stopped serving: %v", n.GetMyNodeID(), err)
		}
	}

	close(release) // node-3 writes its ready record again
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(nodes...) },
		"the handoffs never completed after node-3 rewrote its ready record")
	if count(leader) != 1 {
		t.Errorf("the leader counted %v ready errors, want 1", count(leader))
	}
}

// TestFormat1MapIsMigrated starts a node on a cluster written in format 1
// (one assignment key) while a member of an older version (no map_format)
// is registered: the leader keeps format 1 until that member is gone, then
// rewrites the map as parts, deletes the old key and records format 2 in
// the config.
func TestFormat1MapIsMigrated(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	root := "/clusterkit/default/"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts := make([]string, 16)
	for i := range parts {
		parts[i] = `{"t":[0],"s":[0],"e":1}`
	}
	legacy := `{"v":5,"nodes":["old"],"planned":[{"id":"old","weight":1,"inc":7}],"p":[` + strings.Join(parts, ",") + `]}`
	for k, v := range map[string]string{
		"config":     `{"format_version":1,"partition_count":16,"replication_factor":3,"hash":"` + placement.HashName + `"}`,
		"assignment": legacy,
	} {
		if _, err := cli.Put(ctx, root+k, v); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, root+"members/old", `{"id":"old","addr":"127.0.0.1:1","weight":1,"state":"active","healthy":true,"incarnation":7}`,
		clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	node := clustertest.Start(t, externalOptions(t, srv, "node-1"), nil)
	get := func(key string) string {
		resp, err := cli.Get(ctx, root+key)
		if err != nil || len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(get("assignment"), `"node-1"`)
	}, "the leader did not plan node-1 in format 1")
	if get("map/meta") != "" {
		t.Fatal("map/meta written while a member reads format 1 only")
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool {
		return get("assignment") == "" && get("map/meta") != "" && clustertest.Agreed(node)
	}, "no migration: assignment %q, meta %q", get("assignment"), get("map/meta"))
	if !strings.Contains(get("config"), `"format_version":2`) {
		t.Errorf("config after the migration: %s", get("config"))
	}
	p, err := node.GetPartition("k")
	if err != nil || p.PrimaryNode != "node-1" {
		t.Fatalf("after the migration: %+v, %v", p, err)
	}
}
