package clusterkit_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

func TestPreviewPlanMatchesTheJoinItPredicts(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := formExternal(t, srv, 3, nil)
	n1 := nodes[0]
	before := n1.GetCluster()
	pv, err := n1.PreviewPlan(clusterkit.PlanChange{})
	if err != nil || pv.Moves != 0 || len(pv.Partitions) != 0 {
		t.Fatalf("preview of a balanced map: %+v, %v; want nothing to move", pv, err)
	}
	// Over HTTP, read-only: no token needed.
	var join clusterkit.PlanPreview
	getJSON(t, nodes[1], "/rebalance/preview?add=node-4", http.StatusOK, &join)
	if join.Moves == 0 || !slices.Contains(join.Nodes, "node-4") {
		t.Fatalf("preview of a join: %+v, want moves to node-4", join)
	}
	gains, losses := 0, 0
	for _, d := range join.PerNode {
		gains += len(d.Gains)
		losses += len(d.Losses)
		if d.Node == "node-4" && (d.Before != 0 || d.After != len(d.Gains) || d.After == 0) {
			t.Fatalf("node-4 in the preview: %+v", d)
		}
	}
	if gains != join.Moves || losses != join.Moves {
		t.Fatalf("preview: %d gains, %d losses, %d moves; want all equal", gains, losses, join.Moves)
	}
	time.Sleep(100 * time.Millisecond)
	if c := n1.GetCluster(); c.AssignmentVersion != before.AssignmentVersion {
		t.Fatalf("a preview wrote the map: version %d → %d", before.AssignmentVersion, c.AssignmentVersion)
	}
	// The join itself moves exactly what the preview said.
	nodes = append(nodes, clustertest.Start(t, externalOptions(t, srv, "node-4"), nil))
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "node-4 never joined")
	after := n1.GetCluster()
	want := map[int][]string{}
	for _, d := range join.Partitions {
		want[d.Partition] = d.To
	}
	for i, p := range after.Partitions {
		got := append([]string{p.PrimaryNode}, p.ReplicaNodes...)
		w, ok := want[i]
		if !ok {
			q := before.Partitions[i]
			w = append([]string{q.PrimaryNode}, q.ReplicaNodes...)
		}
		if !slices.Equal(got, w) {
			t.Fatalf("partition %d after the join: %v, preview said %v", i, got, w)
		}
	}
}

func TestPreviewPlanErrors(t *testing.T) {
	srv := etcdtest.Start(t)
	ck := formExternal(t, srv, 2, nil)[0]
	pv, err := ck.PreviewPlan(clusterkit.PlanChange{Remove: []string{"node-2"}, Add: []clusterkit.NodeSpec{{ID: "node-7", Zone: "b", Weight: 2}}})
	if err != nil || !slices.Equal(pv.Nodes, []string{"node-1", "node-7"}) {
		t.Fatalf("preview remove node-2, add node-7: %+v, %v", pv, err)
	}
	for _, tc := range []struct {
		name   string
		change clusterkit.PlanChange
		want   error
	}{
		{"remove unknown", clusterkit.PlanChange{Remove: []string{"node-9"}}, clusterkit.ErrNotFound},
		{"add member", clusterkit.PlanChange{Add: []clusterkit.NodeSpec{{ID: "node-1"}}}, clusterkit.ErrInvalidArgument},
		{"bad id", clusterkit.PlanChange{Add: []clusterkit.NodeSpec{{ID: "a b"}}}, clusterkit.ErrInvalidArgument},
		{"bad weight", clusterkit.PlanChange{Add: []clusterkit.NodeSpec{{ID: "x", Weight: -1}}}, clusterkit.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ck.PreviewPlan(tc.change); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := clusterkit.ParseNodeSpec("x:z:heavy"); !errors.Is(err, clusterkit.ErrInvalidArgument) {
		t.Fatalf("ParseNodeSpec(x:z:heavy): %v", err)
	}
	for path, want := range map[string]int{
		"/rebalance/preview?add=x:z:heavy": http.StatusBadRequest, "/rebalance/preview?remove=nobody": http.StatusNotFound,
		"/rebalance/preview?add=n:z:1:2": http.StatusBadRequest,
	} {
		resp, b := call(t, ck, http.MethodGet, path, "")
		var e struct{ Error string }
		if resp.StatusCode != want || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("GET %s: status %d, want %d with an error: %s", path, resp.StatusCode, want, b)
		}
	}
}
