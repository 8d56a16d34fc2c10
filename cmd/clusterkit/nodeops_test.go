package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// formOnEtcd starts n nodes on a new external etcd and waits until they
// agree.
func formOnEtcd(t *testing.T, n int) ([]*clusterkit.ClusterKit, *etcdtest.Server) {
	t.Helper()
	srv := etcdtest.Start(t)
	var nodes []*clusterkit.ClusterKit
	for i := 1; i <= n; i++ {
		o := clustertest.Options(t, fmt.Sprintf("node-%d", i))
		o.Etcd.Endpoints = srv.Endpoints()
		nodes = append(nodes, clustertest.Start(t, o, nil))
	}
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "%d nodes never agreed", n)
	return nodes, srv
}

// TestNodeOperationsAgainstCluster runs cordon, uncordon, drain and
// maintenance against a real 4-node cluster.
func TestNodeOperationsAgainstCluster(t *testing.T) {
	nodes, srv := formOnEtcd(t, 4)
	ctx := context.Background()
	env := map[string]string{envNode: clustertest.Addr(nodes[0])}
	run := func(want int, args ...string) result {
		t.Helper()
		r := cli(ctx, env, args...)
		if r.code != want {
			t.Fatalf("clusterkit %s: got %v\nwant exit %d", strings.Join(args, " "), r, want)
		}
		return r
	}
	// Dry runs need no token and write nothing.
	v := nodes[0].GetCluster().AssignmentVersion
	if out := run(exitOK, "rebalance", "--dry-run").stdout; !strings.HasPrefix(out, fmt.Sprintf("dry run from map v%d for 4 nodes: 0 moves", v)) {
		t.Fatalf("rebalance --dry-run: got %q", out)
	}
	var pv planPreview
	if err := json.Unmarshal([]byte(run(exitOK, "rebalance", "--dry-run", "--add", "node-5:z:2", "--remove", "node-1", "-o", "json").stdout), &pv); err != nil {
		t.Fatal(err)
	}
	if pv.Moves == 0 || strings.Join(pv.Nodes, ",") != "node-2,node-3,node-4,node-5" || len(pv.Partitions) == 0 {
		t.Fatalf("rebalance --dry-run --add node-5:z:2 --remove node-1: got %+v", pv)
	}
	if out := run(exitOK, "rebalance", "--dry-run", "--add", "node-5").stdout; !strings.Contains(out, "node-5") || !strings.Contains(out, "partition-") {
		t.Fatalf("rebalance --dry-run --add node-5: no table or partitions:\n%s", out)
	}
	if r := run(exitUsage, "rebalance", "--dry-run", "--add", "n:z:heavy"); !strings.Contains(r.stderr, `weight "heavy" is not a number`) {
		t.Fatalf("--add n:z:heavy: got %v", r)
	}
	if r := run(exitFailed, "rebalance", "--dry-run", "--remove", "node-9"); !strings.Contains(r.stderr, `"node-9" to remove is not a live member`) {
		t.Fatalf("--remove node-9: got %v", r)
	}
	if r := run(exitUsage, "rebalance", "--add", "node-5"); !strings.Contains(r.stderr, "--add and --remove need --dry-run") {
		t.Fatalf("rebalance --add without --dry-run: got %v", r)
	}
	if got := nodes[0].GetCluster().AssignmentVersion; got != v {
		t.Fatalf("dry runs wrote the map: v%d → v%d", v, got)
	}
	if r := run(exitUsage, "cordon", "node-3"); !strings.Contains(r.stderr, "needs the cluster token") {
		t.Fatalf("cordon without a token: got %v", r)
	}
	env[envToken] = "test-token"
	if r := run(exitFailed, "drain", "node-9"); !strings.Contains(r.stderr, `"node-9" is not a live member`) {
		t.Fatalf("drain node-9: got %v", r)
	}
	if r := run(exitUsage, "maintenance", "sideways"); !strings.Contains(r.stderr, `maintenance takes on or off, got "sideways"`) {
		t.Fatalf("maintenance sideways: got %v", r)
	}
	held := len(nodes[0].GetPartitionsForNode("node-3"))
	if r := run(exitOK, "cordon", "node-3"); r.stdout != fmt.Sprintf("cordoned node-3: it gets no new partitions and keeps its %d\n", held) {
		t.Fatalf("cordon node-3: got %q", r.stdout)
	}
	if out := run(exitOK, "status").stdout; !strings.Contains(out, "node-3:") || !strings.Contains(out, "cordoned") {
		t.Fatalf("status does not show the cordon:\n%s", out)
	}
	if r := run(exitOK, "uncordon", "node-3"); !strings.HasPrefix(r.stdout, "node-3 is schedulable again") {
		t.Fatalf("uncordon node-3: got %q", r.stdout)
	}
	r := run(exitOK, "drain", "node-3", "--wait", "-o", "json")
	var body struct {
		Action    string        `json:"action"`
		Operation nodeOperation `json:"operation"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &body); err != nil {
		t.Fatalf("drain -o json: %v\n%s", err, r.stdout)
	}
	if op := body.Operation; body.Action != "drain node-3" || op.Operation != "draining" || !op.Done || op.Partitions != 0 {
		t.Fatalf("drain node-3 --wait -o json: got %+v", body)
	}
	if got := len(nodes[0].GetPartitionsForNode("node-3")); got != 0 {
		t.Fatalf("after drain --wait node-3 serves %d partitions", got)
	}
	var s statusJSON
	if err := json.Unmarshal([]byte(run(exitOK, "status", "-o", "json").stdout), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Operations) != 1 || s.Operations[0].Node != "node-3" || !s.Operations[0].Done {
		t.Fatalf("status -o json operations: got %+v, want node-3 drained", s.Operations)
	}
	if out := run(exitOK, "drain", "node-3").stdout; !strings.HasPrefix(out, "drained node-3: it holds nothing") {
		t.Fatalf("drain of a drained node: got %q", out)
	}
	if out := run(exitOK, "maintenance", "on").stdout; !strings.HasPrefix(out, "maintenance mode on") {
		t.Fatalf("maintenance on: got %q", out)
	}
	if out := run(exitOK, "status").stdout; !strings.Contains(out, "maintenance:") {
		t.Fatalf("status does not show maintenance:\n%s", out)
	}
	run(exitOK, "maintenance", "off")
	if r := run(exitFailed, "cancel-handoff", "partition-2"); !strings.Contains(r.stderr, "no handoff of partition-2 is under way") {
		t.Fatalf("cancel-handoff of a settled partition: got %v", r)
	}
	// A node whose handoffs always fail: cancel one of them.
	o := clustertest.Options(t, "node-5")
	o.Etcd.Endpoints = srv.Endpoints()
	clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID == "node-5" {
				return errors.New("disk full")
			}
			return nil
		})
	})
	var stuck clusterkit.Partition
	clustertest.Eventually(t, 20*time.Second, func() bool {
		for _, p := range nodes[0].GetCluster().Partitions {
			if slices.Contains(p.IncomingNodes, "node-5") {
				stuck = p
				return true
			}
		}
		return false
	}, "node-5 never became incoming")
	if out := run(exitOK, "cancel-handoff", stuck.ID).stdout; out != "cancelled the handoffs of "+stuck.ID+"; it keeps its serving nodes\n" {
		t.Fatalf("cancel-handoff %s: got %q", stuck.ID, out)
	}
	if p := nodes[0].GetCluster().Partitions[stuck.Index]; len(p.IncomingNodes) != 0 || p.PrimaryNode != stuck.PrimaryNode {
		t.Fatalf("%s after cancel-handoff: %+v, was %+v", stuck.ID, p, stuck)
	}
	if r := run(exitFailed, "cancel-handoff", "partition-99"); !strings.Contains(r.stderr, `no partition "partition-99"`) {
		t.Fatalf("cancel-handoff partition-99: got %v", r)
	}
	if c := nodes[0].GetCluster(); c.Maintenance != "" {
		t.Fatalf("maintenance still on after off: %q", c.Maintenance)
	}
}
