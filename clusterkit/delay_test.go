package clusterkit_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// TestRebalanceDelayReservesAndEndDelayReleases crashes a node of a
// cluster with a 30 s rebalance delay: it shows as away (cluster view,
// health, metric) with its primaries failed over, until EndRebalanceDelay
// (over HTTP) lets the leader replace it.
func TestRebalanceDelayReservesAndEndDelayReleases(t *testing.T) {
	srv := etcdtest.Start(t)
	var nodes []*clusterkit.ClusterKit
	for _, id := range []string{"node-1", "node-2", "node-3", "node-4"} {
		o := externalOptions(t, srv, id)
		o.RebalanceDelay = 30 * time.Second
		nodes = append(nodes, clustertest.Start(t, o, nil))
	}
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "never agreed")
	nodes[3].Halt()
	live := nodes[:3]
	clustertest.Eventually(t, 10*time.Second, func() bool {
		c := live[0].GetCluster()
		if !slices.Equal(c.AwayNodes, []string{"node-4"}) {
			return false
		}
		for _, p := range c.Partitions {
			if p.PrimaryNode == "node-4" {
				return false
			}
		}
		return true
	}, "node-4 never away with its primaries failed over: %+v", live[0].GetCluster().AwayNodes)
	// node-2 applies the same map a moment after node-1: wait for it.
	clustertest.Eventually(t, 5*time.Second, func() bool {
		h := live[1].HealthCheck()
		return slices.Equal(h.AwayNodes, []string{"node-4"}) && slices.ContainsFunc(h.Reasons, func(r string) bool { return strings.Contains(r, "away") })
	}, "node-2's health never named node-4 away among its reasons")
	if clustertest.Agreed(live...) {
		t.Fatal("settled while node-4's slots are reserved")
	}
	resp, body := call(t, live[2], http.MethodPost, "/rebalance/end-delay", "", "Authorization", "Bearer "+testToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /rebalance/end-delay: %s %s", resp.Status, body)
	}
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(live...) }, "never settled after the delay ended")
}

// TestMaintenanceModeOnAndOff turns maintenance on and off through the API
// and HTTP: the map, health, metric and a join placed only after it ends.
func TestMaintenanceModeOnAndOff(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := formExternal(t, srv, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[1].SetMaintenance(ctx, true); err != nil {
		t.Fatal(err)
	}
	if m := nodes[1].GetCluster().Maintenance; m == "" {
		t.Fatal("no maintenance in the map after SetMaintenance(true) returned")
	}
	clustertest.Eventually(t, 5*time.Second, func() bool {
		return slices.ContainsFunc(nodes[1].HealthCheck().Reasons, func(r string) bool { return strings.Contains(r, "maintenance") })
	}, "no maintenance reason in health")
	_, metrics := call(t, nodes[1], http.MethodGet, "/metrics", "")
	if !strings.Contains(string(metrics), "clusterkit_maintenance_mode 1") {
		t.Fatal("clusterkit_maintenance_mode is not 1")
	}
	third := clustertest.Start(t, externalOptions(t, srv, "node-3"), nil)
	time.Sleep(300 * time.Millisecond) // the leader's debounce and more
	for _, p := range third.GetCluster().Partitions {
		if slices.Contains(p.IncomingNodes, "node-3") {
			t.Fatalf("%s: node-3 placed during maintenance", p.ID)
		}
	}
	resp, body := call(t, nodes[0], http.MethodPost, "/maintenance/off", "", "Authorization", "Bearer "+testToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /maintenance/off: %s %s", resp.Status, body)
	}
	all := append(nodes, third)
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(all...) }, "the join never placed after maintenance")
	if m := nodes[0].GetCluster().Maintenance; m != "" {
		t.Fatalf("maintenance %q after /maintenance/off returned", m)
	}
	if resp, _ := call(t, nodes[0], http.MethodPost, "/maintenance/sideways", ""); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /maintenance/sideways: %s", resp.Status)
	}
}
