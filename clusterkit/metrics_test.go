package clusterkit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/tcpproxy"
)

// families is one scrape, parsed.
type families map[string]*dto.MetricFamily

// scrape GETs /metrics from ck and parses it with the Prometheus text
// parser.
func scrape(t testing.TB, ck *clusterkit.ClusterKit) families {
	t.Helper()
	resp, b := call(t, ck, http.MethodGet, "/metrics", "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics on %s: status %d, Content-Type %q; body %.200s", ck.GetMyNodeID(), resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return parseMetrics(t, b)
}

func parseMetrics(t testing.TB, b []byte) families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// get returns the value of the sample of name whose labels include the
// given name/value pairs: a counter's or gauge's value, a histogram's
// sample count. ok is false if there is no such sample.
func (f families) get(name string, labels ...string) (v float64, ok bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		default:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// value is get for a sample that must exist.
func (f families) value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.get(name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v in the scrape", name, labels)
	}
	return v
}

// roles counts ck's partitions by role in its current map.
func roles(ck *clusterkit.ClusterKit) (primary, replica, incoming int) {
	me := ck.GetMyNodeID()
	for _, p := range ck.GetCluster().Partitions {
		switch {
		case p.PrimaryNode == me:
			primary++
		case slices.Contains(p.ReplicaNodes, me):
			replica++
		}
		if slices.Contains(p.IncomingNodes, me) {
			incoming++
		}
	}
	return
}

// stateMismatch compares a scrape of ck with ck's view of the cluster and
// returns the first difference, "" if none.
func stateMismatch(t testing.TB, ck *clusterkit.ClusterKit, f families) string {
	c := ck.GetCluster()
	primary, replica, incoming := roles(ck)
	active, unhealthy := 0, 0
	for _, n := range c.Nodes {
		if n.Status == clusterkit.NodeUnhealthy {
			unhealthy++
		} else {
			active++
		}
	}
	isLeader := 0.0
	if c.Leader == ck.GetMyNodeID() {
		isLeader = 1
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"clusterkit_members", []string{"state", "active"}, float64(active)},
		{"clusterkit_members", []string{"state", "unhealthy"}, float64(unhealthy)},
		{"clusterkit_assignment_version", nil, float64(c.AssignmentVersion)},
		{"clusterkit_partitions", []string{"role", "primary"}, float64(primary)},
		{"clusterkit_partitions", []string{"role", "replica"}, float64(replica)},
		{"clusterkit_partitions", []string{"role", "incoming"}, float64(incoming)},
		{"clusterkit_handoffs_pending", nil, float64(incoming)},
		{"clusterkit_is_leader", nil, isLeader},
	}
	for _, c := range checks {
		if got := f.value(t, c.name, c.labels...); got != c.want {
			return ck.GetMyNodeID() + ": " + c.name + strings.Join(c.labels, "=") + " = " + ftoa(got) + ", its view says " + ftoa(c.want)
		}
	}
	return ""
}

func ftoa(v float64) string { return model.SampleValue(v).String() }

// TestMetricsMatchClusterState scrapes every node of a 3-node embedded
// cluster and checks the values against the cluster's state, then counts
// one manual rebalance on every node.
func TestMetricsMatchClusterState(t *testing.T) {
	nodes := clustertest.Form(t, 3, nil, func(ck *clusterkit.ClusterKit) {
		ck.OnNodeJoin(func(*clusterkit.NodeJoinEvent) {})
		ck.OnRebalanceStart(func(*clusterkit.RebalanceEvent) { panic("a faulty rebalance handler") })
	})

	var last string
	clustertest.Eventually(t, 10*time.Second, func() bool {
		leaders := 0.0
		for _, n := range nodes {
			f := scrape(t, n)
			if last = stateMismatch(t, n, f); last != "" {
				return false
			}
			leaders += f.value(t, "clusterkit_is_leader")
		}
		if leaders != 1 {
			last = "is_leader sums to " + ftoa(leaders)
			return false
		}
		return true
	}, "metrics never matched the cluster's state: %s", &last)

	primaries, replicas := 0.0, 0.0
	for _, n := range nodes {
		f := scrape(t, n)
		primaries += f.value(t, "clusterkit_partitions", "role", "primary")
		replicas += f.value(t, "clusterkit_partitions", "role", "replica")
		for name, want := range map[string]float64{
			"clusterkit_members":                        3, // active
			"clusterkit_handoffs_failing":               0,
			"clusterkit_handoff_failures_total":         0,
			"clusterkit_lease_keepalive_failures_total": 0,
			"clusterkit_watch_resyncs_total":            0,
			"clusterkit_watch_coalesced_total":          0,
			"clusterkit_etcd_connected":                 1,
		} {
			if got := f.value(t, name); got != want {
				t.Errorf("%s: %s = %v, want %v", n.GetMyNodeID(), name, got, want)
			}
		}
		if age := f.value(t, "clusterkit_assignment_age_seconds"); age <= 0 {
			t.Errorf("%s: assignment age %v, want > 0", n.GetMyNodeID(), age)
		}
		if _, ok := f.get("clusterkit_etcd_request_errors_total"); ok {
			t.Errorf("%s: etcd request errors in a healthy cluster: %v", n.GetMyNodeID(), f["clusterkit_etcd_request_errors_total"])
		}
		// The joins of node-2 and node-3 were delivered to node-1's handler.
		if n == nodes[0] {
			if got := f.value(t, "clusterkit_hook_duration_seconds", "hook", "node_join"); got < 2 {
				t.Errorf("node-1: hook_duration_seconds{hook=node_join} counts %v calls, want ≥ 2", got)
			}
		}
		// The private registry has the Go and process collectors too; every
		// name has a known prefix and ClusterKit's carry their unit.
		for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
			if f[name] == nil {
				t.Errorf("%s: no %s in the private registry", n.GetMyNodeID(), name)
			}
		}
		for name, fam := range f {
			if !strings.HasPrefix(name, "clusterkit_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
				t.Errorf("%s: unexpected metric %s", n.GetMyNodeID(), name)
			}
			if fam.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s does not end in _total", name)
			}
		}
	}
	if primaries != 16 || replicas != 32 {
		t.Fatalf("over all nodes: %v primaries and %v replicas, want 16 and 32", primaries, replicas)
	}

	// One manual rebalance: every node counts one start, one completion and
	// one duration, and the panicking handler once.
	type counts struct{ started, completed, durations, panics float64 }
	read := func(f families) counts {
		p, _ := f.get("clusterkit_hook_panics_total", "hook", "rebalance_start")
		return counts{f.value(t, "clusterkit_rebalances_started_total"), f.value(t, "clusterkit_rebalances_completed_total"),
			f.value(t, "clusterkit_rebalance_duration_seconds"), p}
	}
	before := map[string]counts{}
	for _, n := range nodes {
		before[n.GetMyNodeID()] = read(scrape(t, n))
	}
	resp, b := call(t, nodes[2], http.MethodPost, "/rebalance", "", "Authorization", "Bearer "+testToken)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /rebalance: %d %s", resp.StatusCode, b)
	}
	for _, n := range nodes {
		b := before[n.GetMyNodeID()]
		want := counts{b.started + 1, b.completed + 1, b.durations + 1, b.panics + 1}
		var got counts
		clustertest.Eventually(t, 10*time.Second, func() bool {
			f := scrape(t, n)
			got = read(f)
			return got == want && stateMismatch(t, n, f) == ""
		}, "%s: after one rebalance %+v, want %+v", n.GetMyNodeID(), &got, want)
	}
}

// TestMetricsTrackHandoffsAndEtcdLoss follows a failing handoff, then a cut
// between a node and etcd (lease lost, watch compacted meanwhile), in the
// node's metrics, /ready and /health/detailed.
func TestMetricsTrackHandoffsAndEtcdLoss(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := startExternal(t, srv, 2, nil)
	proxy := tcpproxy.Start(t, srv.Endpoints()[0])
	var fail atomic.Bool
	fail.Store(true)
	o := clustertest.Options(t, "node-3")
	o.Etcd.Endpoints = []string{"http://" + proxy.Addr()}
	n3 := clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID == "node-3" && fail.Load() {
				return errors.New("disk full")
			}
			return nil
		})
	})

	// node-3 receives all 16 partitions (RF 3 on 3 nodes) and every
	// handoff fails.
	var f families
	// (One scrape is not atomic: collectors are read concurrently, so the
	// counter may lag the gauge in one scrape; poll until both agree.)
	clustertest.Eventually(t, 10*time.Second, func() bool {
		f = scrape(t, n3)
		return f.value(t, "clusterkit_handoffs_failing") == 16 && f.value(t, "clusterkit_handoffs_pending") == 16 &&
			f.value(t, "clusterkit_handoff_failures_total") >= 16 && stateMismatch(t, n3, f) == ""
	}, "node-3 never showed 16 pending and failing handoffs matching its view")
	var d apiHealth
	getJSON(t, n3, "/health/detailed", http.StatusOK, &d)
	if d.Status != clusterkit.HealthDegraded || d.FailedHandoffs != 16 || d.PendingHandoffs != 16 {
		t.Fatalf("/health/detailed during failing handoffs: %+v; want degraded, 16 failed, 16 pending", d)
	}
	fail.Store(false)
	all := append(nodes, n3)
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(all...) }, "handoffs never completed: %v",
		describe(all))
	clustertest.Eventually(t, 10*time.Second, func() bool {
		f = scrape(t, n3)
		return f.value(t, "clusterkit_handoffs_failing") == 0 && stateMismatch(t, n3, f) == ""
	}, "node-3's metrics never settled after the handoffs")

	// Cut node-3 off etcd: its lease runs out, the others see it leave.
	// Meanwhile the cluster's prefix changes and is compacted, so node-3's
	// watch must re-read when it is back. (Restore before the clean-up
	// stops node-3: a node cut off from etcd cannot stop yet.)
	t.Cleanup(proxy.Restore)
	proxy.Cut()
	clustertest.Eventually(t, 10*time.Second, func() bool {
		resp, b := call(t, n3, http.MethodGet, "/ready", "")
		var r apiReady
		return resp.StatusCode == http.StatusServiceUnavailable && json.Unmarshal(b, &r) == nil &&
			slices.Equal(r.Reasons, []string{"membership lost", "not connected to etcd"})
	}, "/ready on the cut-off node never said 503: membership lost, not connected to etcd")
	if got := scrape(t, n3).value(t, "clusterkit_etcd_connected"); got != 0 {
		t.Fatalf("etcd_connected %v while /ready says not connected", got)
	}
	getJSON(t, n3, "/health/detailed", http.StatusServiceUnavailable, &d)
	if d.Status != clusterkit.HealthCritical || d.EtcdConnected || d.Registered || d.Error == "" {
		t.Fatalf("/health/detailed on the cut-off node: %+v; want critical, not connected, not registered", d)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool {
		f := scrape(t, nodes[0])
		return f.value(t, "clusterkit_members", "state", "active") == 2 && stateMismatch(t, nodes[0], f) == ""
	}, "node-1's metrics never showed node-3 gone")
	ctx := contextTimeout(t, 10*time.Second)
	for _, k := range []string{"a", "b", "c"} {
		if _, err := cli.Put(ctx, "/clusterkit/default/data/"+k, k); err != nil {
			t.Fatal(err)
		}
	}
	srv.Compact(ctx, cli)
	proxy.Restore()

	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(all...) }, "node-3 never came back")
	clustertest.Eventually(t, 10*time.Second, func() bool {
		f = scrape(t, n3)
		return f.value(t, "clusterkit_watch_resyncs_total") >= 1 && f.value(t, "clusterkit_etcd_connected") == 1 &&
			f.value(t, "clusterkit_lease_keepalive_failures_total") >= 1 && stateMismatch(t, n3, f) == ""
	}, "node-3's metrics never showed the lost lease, the re-read and the reconnection")
	var r apiReady
	getJSON(t, n3, "/ready", http.StatusOK, &r)
}

// TestMetricsOnOwnRegisterer checks Options.Registerer: the metrics go
// there (and /metrics serves it), a second node cannot share it, a
// Registerer that cannot be gathered leaves /metrics to the application,
// and Stop takes the metrics away.
func TestMetricsOnOwnRegisterer(t *testing.T) {
	srv := etcdtest.Start(t)
	reg := prometheus.NewRegistry()
	o := clustertest.Options(t, "node-1")
	o.Etcd.Endpoints = srv.Endpoints()
	o.Registerer = reg
	ck := clustertest.Start(t, o, nil)
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(ck) }, "never settled")

	clustertest.Eventually(t, 10*time.Second, func() bool {
		return scrape(t, ck).value(t, "clusterkit_is_leader") == 1
	}, "the only node never became leader in its metrics")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fam := range fams {
		names = append(names, fam.GetName())
	}
	if !slices.Contains(names, "clusterkit_assignment_version") || slices.Contains(names, "go_goroutines") {
		t.Fatalf("the application's registry holds %v; want ClusterKit's metrics and no Go collector", names)
	}

	o2 := clustertest.Options(t, "node-2")
	o2.Etcd.Endpoints = srv.Endpoints()
	o2.Registerer = reg
	if _, err := clusterkit.New(o2); !errors.Is(err, clusterkit.ErrInvalidOptions) {
		t.Fatalf("a second node on the same Registerer: got %v, want ErrInvalidOptions", err)
	}

	o3 := clustertest.Options(t, "node-3")
	o3.Registerer = struct{ prometheus.Registerer }{prometheus.NewRegistry()}
	ck3, err := clusterkit.New(o3)
	if err != nil {
		t.Fatal(err)
	}
	defer ck3.Stop(context.Background())
	rec := serve(ck3.Handler(), http.MethodGet, "/metrics", "")
	assertJSONError(t, "/metrics with a Registerer that is not a Gatherer", rec.Result(), rec.Body.Bytes(), http.StatusNotFound)

	if err := ck.Stop(contextTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if fams, _ := reg.Gather(); len(fams) != 0 {
		t.Fatalf("after Stop the application's registry still holds %d families", len(fams))
	}
}

// describe is a lazy summary of the nodes' views for failure messages.
type describe []*clusterkit.ClusterKit

func (d describe) String() string {
	var b strings.Builder
	for _, n := range d {
		c := n.GetCluster()
		fmt := func(p clusterkit.Partition) string {
			return p.PrimaryNode + "+" + strings.Join(p.ReplicaNodes, ",") + "<" + strings.Join(p.IncomingNodes, ",")
		}
		b.WriteString("\n" + n.GetMyNodeID() + ": version " + ftoa(float64(c.AssignmentVersion)) + " leader " + c.Leader + " nodes ")
		for _, m := range c.Nodes {
			b.WriteString(m.ID + "(" + m.Status + ") ")
		}
		for _, p := range c.Partitions {
			b.WriteString(" " + fmt(p))
		}
		h := n.HealthCheck()
		b.WriteString("\n  health " + string(h.Status) + " " + strings.Join(h.Reasons, "; "))
	}
	return b.String()
}
