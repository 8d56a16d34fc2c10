package clusterkit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

const testToken = "test-token" // clustertest.Options' ClusterToken

var httpClient = &http.Client{Timeout: 30 * time.Second}

// call sends method path to node's HTTP API with body (none if "") and
// header pairs, and returns the response (body closed) and the body.
func call(t testing.TB, ck *clusterkit.ClusterKit, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addrOf(ck)+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// addrs remembers each node's HTTP address: a removed node no longer finds
// itself in its view, but still serves.
var addrs sync.Map // *clusterkit.ClusterKit → string

func addrOf(ck *clusterkit.ClusterKit) string {
	if a, ok := addrs.Load(ck); ok {
		return a.(string)
	}
	a := clustertest.Addr(ck)
	if a != "" {
		addrs.Store(ck, a)
	}
	return a
}

// getJSON GETs path, checks the status and decodes the JSON body into v.
func getJSON(t testing.TB, ck *clusterkit.ClusterKit, path string, wantStatus int, v any) *http.Response {
	t.Helper()
	resp, b := call(t, ck, http.MethodGet, path, "")
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s on %s: status %d, want %d; body %s", path, ck.GetMyNodeID(), resp.StatusCode, wantStatus, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v: %s", path, err, b)
	}
	return resp
}

// assertKeys checks that the JSON object obj has exactly the keys want.
func assertKeys(t testing.TB, what string, obj any, want ...string) {
	t.Helper()
	m, ok := obj.(map[string]any)
	if !ok {
		t.Fatalf("%s: got %T, want a JSON object", what, obj)
	}
	got := slices.Sorted(maps.Keys(m))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: keys %v, want %v", what, got, want)
	}
}

// assertJSONError checks an error answer: the status, a JSON body that is
// exactly {"error": "<non-empty>"}.
func assertJSONError(t testing.TB, what string, resp *http.Response, body []byte, wantStatus int) string {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s: status %d, want %d; body %s", what, resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json; body %q", what, ct, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: error body is not JSON: %v: %q", what, err, body)
	}
	assertKeys(t, what+" error body", m, "error")
	msg, _ := m["error"].(string)
	if msg == "" {
		t.Fatalf("%s: empty error message", what)
	}
	return msg
}

// The shapes of the API's answers, as a client would declare them.
type (
	apiMember struct {
		ID          string            `json:"id"`
		Address     string            `json:"address"`
		Zone        string            `json:"zone"`
		Weight      float64           `json:"weight"`
		Services    map[string]string `json:"services"`
		State       string            `json:"state"`
		Incarnation int64             `json:"incarnation"`
		Started     time.Time         `json:"started"`
	}
	apiPartition struct {
		ID       string   `json:"id"`
		Index    int      `json:"index"`
		Primary  string   `json:"primary"`
		Replicas []string `json:"replicas"`
		Incoming []string `json:"incoming"`
		Epoch    uint64   `json:"epoch"`
	}
	apiCluster struct {
		Name               string         `json:"name"`
		Node               string         `json:"node"`
		Leader             string         `json:"leader"`
		PartitionCount     int            `json:"partition_count"`
		ReplicationFactor  int            `json:"replication_factor"`
		AssignmentVersion  int64          `json:"assignment_version"`
		MembershipRevision int64          `json:"membership_revision"`
		Settled            bool           `json:"settled"`
		Members            []apiMember    `json:"members"`
		Partitions         []apiPartition `json:"partitions"`
	}
	apiPartitionView struct {
		apiPartition
		Key               *string     `json:"key"`
		Nodes             []apiMember `json:"nodes"`
		AssignmentVersion int64       `json:"assignment_version"`
	}
	apiReady struct {
		Ready             bool     `json:"ready"`
		Node              string   `json:"node"`
		AssignmentVersion int64    `json:"assignment_version"`
		Reasons           []string `json:"reasons"`
		Error             string   `json:"error"`
	}
	apiHealth struct {
		Node string `json:"node"`
		clusterkit.HealthStatus
		Error string `json:"error"`
	}
)

// startExternal starts n nodes "node-1" … on srv; adjust, if not nil,
// changes each node's options, and configure (at most one) runs before
// each Start. It returns once they agree on one map.
func startExternal(t *testing.T, srv *etcdtest.Server, n int, adjust func(*clusterkit.Options), configure ...func(*clusterkit.ClusterKit)) []*clusterkit.ClusterKit {
	t.Helper()
	var nodes []*clusterkit.ClusterKit
	for i := 1; i <= n; i++ {
		o := clustertest.Options(t, fmt.Sprintf("node-%d", i))
		o.Etcd.Endpoints = srv.Endpoints()
		if adjust != nil {
			adjust(&o)
		}
		var c func(*clusterkit.ClusterKit)
		if len(configure) > 0 {
			c = configure[0]
		}
		nodes = append(nodes, clustertest.Start(t, o, c))
	}
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "%d nodes never agreed", n)
	return nodes
}

// TestHTTPAPI exercises every endpoint of a 3-node cluster over loopback
// HTTP, in order: the read-only views, routing errors, the token, malformed
// bodies, a rebalance (and the ETag it changes), and an admin removal.
func TestHTTPAPI(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	core, logs := observer.New(zapcore.InfoLevel)
	nodes := startExternal(t, srv, 3, func(o *clusterkit.Options) {
		o.Services = map[string]string{"kv": "127.0.0.1:9000"}
		if o.NodeID == "node-1" {
			o.Logger = zap.New(core)
			o.Zone = "zone-a"
		}
	})
	n1, n3 := nodes[0], nodes[2]

	t.Run("cluster", func(t *testing.T) {
		for _, n := range nodes {
			want := n.GetCluster()
			var raw map[string]any
			getJSON(t, n, "/cluster", http.StatusOK, &raw)
			assertKeys(t, "/cluster", raw, "name", "node", "leader", "partition_count", "replication_factor",
				"assignment_version", "membership_revision", "settled", "members", "partitions", "rebalance")
			assertKeys(t, "/cluster member", raw["members"].([]any)[0], "id", "address", "zone", "weight", "services",
				"state", "etcd_role", "incarnation", "started")
			assertKeys(t, "/cluster partition", raw["partitions"].([]any)[0], "id", "index", "primary", "replicas", "incoming", "epoch")

			var c apiCluster
			getJSON(t, n, "/cluster", http.StatusOK, &c)
			if c.Name != "default" || c.Node != n.GetMyNodeID() || c.Leader != want.Leader || c.Leader == "" ||
				c.PartitionCount != 16 || c.ReplicationFactor != 3 || !c.Settled || c.MembershipRevision <= 0 {
				t.Fatalf("/cluster on %s: %+v; want name default, node %s, leader %q, 16 partitions, RF 3, settled",
					n.GetMyNodeID(), c, n.GetMyNodeID(), want.Leader)
			}
			if c.AssignmentVersion != want.AssignmentVersion {
				t.Fatalf("/cluster on %s: assignment version %d, GetCluster says %d", n.GetMyNodeID(), c.AssignmentVersion, want.AssignmentVersion)
			}
			if len(c.Members) != 3 {
				t.Fatalf("/cluster on %s: %d members, want 3", n.GetMyNodeID(), len(c.Members))
			}
			for i, m := range c.Members {
				id := fmt.Sprintf("node-%d", i+1)
				wantZone := ""
				if id == "node-1" {
					wantZone = "zone-a"
				}
				if m.ID != id || m.Address != clustertest.Addr(nodes[i]) || m.State != clusterkit.NodeActive || m.Weight != 1 ||
					m.Zone != wantZone || m.Services["kv"] != "127.0.0.1:9000" || m.Incarnation == 0 || m.Started.IsZero() {
					t.Fatalf("/cluster on %s: member %d is %+v; want %s at %s, active, weight 1, zone %q, services, incarnation, started",
						n.GetMyNodeID(), i, m, id, clustertest.Addr(nodes[i]), wantZone)
				}
			}
			if len(c.Partitions) != 16 {
				t.Fatalf("/cluster: %d partitions, want 16", len(c.Partitions))
			}
			for i, p := range c.Partitions {
				w := want.Partitions[i]
				if p.ID != clusterkit.PartitionID(i) || p.Index != i || p.Primary != w.PrimaryNode || !slices.Equal(p.Replicas, w.ReplicaNodes) ||
					len(p.Replicas) != 2 || p.Incoming == nil || len(p.Incoming) != 0 || p.Epoch != w.Epoch || p.Epoch == 0 {
					t.Fatalf("/cluster partition %d: %+v; GetCluster says %+v", i, p, w)
				}
			}
		}
	})

	t.Run("cluster ETag", func(t *testing.T) {
		resp, body := call(t, n1, http.MethodGet, "/cluster", "")
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
			t.Fatalf("GET /cluster: status %d, ETag %q; want 200 and a quoted ETag", resp.StatusCode, etag)
		}
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			resp, b := call(t, n1, http.MethodGet, "/cluster", "", "If-None-Match", inm)
			if resp.StatusCode != http.StatusNotModified || len(b) != 0 || resp.Header.Get("ETag") != etag {
				t.Fatalf("If-None-Match %s: status %d, %d body bytes, ETag %q; want 304, no body, %s",
					inm, resp.StatusCode, len(b), resp.Header.Get("ETag"), etag)
			}
		}
		resp, b := call(t, n1, http.MethodGet, "/cluster", "", "If-None-Match", `"something-else"`)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, body) {
			t.Fatalf("If-None-Match with another tag: status %d, body changed %v; want 200 and the same body", resp.StatusCode, !bytes.Equal(b, body))
		}
		resp, b = call(t, n1, http.MethodHead, "/cluster", "")
		if resp.StatusCode != http.StatusOK || len(b) != 0 || resp.Header.Get("ETag") != etag {
			t.Fatalf("HEAD /cluster: status %d, %d body bytes, ETag %q; want 200, none, %s", resp.StatusCode, len(b), resp.Header.Get("ETag"), etag)
		}
	})

	t.Run("partitions", func(t *testing.T) {
		want := n1.GetCluster()
		for _, path := range []string{"/partitions/partition-3", "/partitions/3"} {
			var raw map[string]any
			getJSON(t, n1, path, http.StatusOK, &raw)
			assertKeys(t, path, raw, "id", "index", "primary", "replicas", "incoming", "epoch", "nodes", "assignment_version")
			var p apiPartitionView
			getJSON(t, n1, path, http.StatusOK, &p)
			w := want.Partitions[3]
			if p.ID != "partition-3" || p.Index != 3 || p.Primary != w.PrimaryNode || !slices.Equal(p.Replicas, w.ReplicaNodes) ||
				p.Epoch != w.Epoch || p.AssignmentVersion != want.AssignmentVersion || p.Key != nil {
				t.Fatalf("GET %s: %+v; want %+v at version %d", path, p, w, want.AssignmentVersion)
			}
			if got, wantIDs := memberIDs(p.Nodes), append([]string{w.PrimaryNode}, w.ReplicaNodes...); !slices.Equal(got, wantIDs) {
				t.Fatalf("GET %s: nodes %v, want %v", path, got, wantIDs)
			}
			for _, m := range p.Nodes {
				if m.Address != want.NodeAddr(m.ID) || m.State != clusterkit.NodeActive {
					t.Fatalf("GET %s: node %+v, want address %s, active", path, m, want.NodeAddr(m.ID))
				}
			}
		}
		for _, key := range []string{"user-42", "", "a/b?c=d&e", "ключ", strings.Repeat("k", 1000)} {
			path := "/partitions?key=" + url.QueryEscape(key)
			var p apiPartitionView
			getJSON(t, n1, path, http.StatusOK, &p)
			wp, err := n1.GetPartition(key)
			if err != nil {
				t.Fatal(err)
			}
			if p.Key == nil || *p.Key != key || p.Index != wp.Index || p.Primary != n1.GetPrimary(wp).ID ||
				!slices.Equal(memberIDs(p.Nodes), nodeIDs(n1.GetNodes(wp))) {
				t.Fatalf("GET /partitions?key=%.20q: partition %d primary %s nodes %v; GetPartition says %d %s %v",
					key, p.Index, p.Primary, memberIDs(p.Nodes), wp.Index, n1.GetPrimary(wp).ID, nodeIDs(n1.GetNodes(wp)))
			}
		}
		var all struct {
			AssignmentVersion int64          `json:"assignment_version"`
			Partitions        []apiPartition `json:"partitions"`
		}
		getJSON(t, n1, "/partitions", http.StatusOK, &all)
		if len(all.Partitions) != 16 || all.AssignmentVersion != want.AssignmentVersion || all.Partitions[15].Primary != want.Partitions[15].PrimaryNode {
			t.Fatalf("GET /partitions: %d partitions at version %d; want 16 at %d", len(all.Partitions), all.AssignmentVersion, want.AssignmentVersion)
		}
	})

	t.Run("health and ready", func(t *testing.T) {
		for _, n := range nodes {
			var h map[string]string
			getJSON(t, n, "/health", http.StatusOK, &h)
			if h["status"] != "ok" || h["node"] != n.GetMyNodeID() {
				t.Fatalf("/health on %s: %v", n.GetMyNodeID(), h)
			}
			var r apiReady
			getJSON(t, n, "/ready", http.StatusOK, &r)
			if !r.Ready || r.Node != n.GetMyNodeID() || r.AssignmentVersion == 0 || len(r.Reasons) != 0 {
				t.Fatalf("/ready on %s: %+v; want ready", n.GetMyNodeID(), r)
			}
			var d apiHealth
			getJSON(t, n, "/health/detailed", http.StatusOK, &d)
			if d.Node != n.GetMyNodeID() || d.Status != clusterkit.HealthHealthy || !d.EtcdConnected || !d.Registered ||
				d.TotalNodes != 3 || d.HealthyNodes != 3 || d.UnderReplicated != 0 || d.PendingHandoffs != 0 || len(d.Reasons) != 0 {
				t.Fatalf("/health/detailed on %s: %+v; want healthy with 3 nodes", n.GetMyNodeID(), d)
			}
		}
	})

	t.Run("no log line per read", func(t *testing.T) {
		before := lifecycleLines(logs)
		for range 20 {
			for _, path := range []string{"/cluster", "/partitions?key=x", "/partitions/1", "/health", "/ready", "/health/detailed", "/metrics"} {
				call(t, n1, http.MethodGet, path, "")
			}
			p, _ := n1.GetPartition("x")
			n1.GetNodes(p)
		}
		if after := lifecycleLines(logs); after != before {
			t.Fatalf("reads logged %d lines, want none: %v", after-before, logs.All()[before:])
		}
		for _, e := range logs.All() {
			if e.ContextMap()["node"] != "node-1" {
				t.Fatalf("log line %q lacks node=node-1: %v", e.Message, e.ContextMap())
			}
		}
		if logs.FilterMessage("started").Len() != 1 {
			t.Fatalf("want one info line \"started\", got %d", logs.FilterMessage("started").Len())
		}
	})

	t.Run("routing and malformed requests", func(t *testing.T) {
		auth := []string{"Authorization", "Bearer " + testToken}
		cases := []struct {
			method, path, body string
			header             []string
			status             int
			allow              string
		}{
			{"GET", "/nope", "", nil, 404, ""},
			{"GET", "/cluster/", "", nil, 404, ""},
			{"GET", "/partitions/", "", nil, 404, ""},
			{"GET", "/partitions/16", "", nil, 404, ""},
			{"GET", "/partitions/partition-16", "", nil, 404, ""},
			{"GET", "/partitions/03", "", nil, 404, ""},
			{"GET", "/partitions/-1", "", nil, 404, ""},
			{"GET", "/partitions/p3", "", nil, 404, ""},
			{"GET", "/nodes/node-1", "", nil, 404, ""},
			{"DELETE", "/cluster", "", nil, 405, "GET, HEAD"},
			{"POST", "/cluster", "{}", nil, 405, "GET, HEAD"},
			{"PUT", "/partitions/1", "", nil, 405, "GET, HEAD"},
			{"POST", "/metrics", "", nil, 405, "GET, HEAD"},
			{"GET", "/rebalance", "", nil, 405, "POST"},
			{"GET", "/nodes/node-1/remove", "", nil, 405, "POST"},
			{"GET", "/cluster/join", "", nil, 405, "POST"},
			{"GET", "/partitions?key=a&key=b", "", nil, 400, ""},
			{"GET", "/partitions?kye=a", "", nil, 400, ""},
			{"GET", "/partitions?key=%zz", "", nil, 400, ""},
			{"POST", "/rebalance", "{", auth, 400, ""},
			{"POST", "/rebalance", `{"force": true}`, auth, 400, ""},
			{"POST", "/rebalance", `[]`, auth, 400, ""},
			{"POST", "/rebalance", `{} {}`, auth, 400, ""},
			{"POST", "/rebalance", `{"pad": "` + strings.Repeat("x", 5000) + `"}`, auth, 413, ""},
			{"POST", "/nodes/node-3/remove", "nope", auth, 400, ""},
			{"POST", "/nodes/bad!id/remove", "", auth, 400, ""},
			{"POST", "/nodes/" + strings.Repeat("n", 129) + "/remove", "", auth, 400, ""},
			{"POST", "/cluster/join", "nope", auth, 400, ""},
			{"POST", "/cluster/join", "", auth, 400, ""},
			{"POST", "/cluster/join", `{"node_id": "` + strings.Repeat("x", 5000) + `"}`, auth, 413, ""},
		}
		for _, c := range cases {
			what := c.method + " " + c.path
			resp, b := call(t, n1, c.method, c.path, c.body, c.header...)
			msg := assertJSONError(t, what, resp, b, c.status)
			if c.status == 405 && resp.Header.Get("Allow") != c.allow {
				t.Fatalf("%s: Allow %q, want %q", what, resp.Header.Get("Allow"), c.allow)
			}
			t.Logf("%s → %d %s", what, c.status, msg)
		}
		if resp, err := cli.Get(contextTimeout(t, 5*time.Second), "/clusterkit/default/rebalance-request"); err != nil || len(resp.Kvs) != 0 {
			t.Fatalf("after malformed rebalance calls: rebalance request %v, %v; want none", resp, err)
		}
		if n := len(n1.GetCluster().Nodes); n != 3 {
			t.Fatalf("after malformed admin calls the cluster has %d nodes, want 3", n)
		}
	})

	t.Run("admin calls need the token", func(t *testing.T) {
		for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", testToken}, {"Authorization", "Basic " + testToken}} {
			for _, path := range []string{"/rebalance", "/nodes/node-3/remove"} {
				resp, b := call(t, n1, http.MethodPost, path, "", h...)
				assertJSONError(t, fmt.Sprintf("POST %s with %q", path, h), resp, b, http.StatusUnauthorized)
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("POST %s: 401 without WWW-Authenticate", path)
				}
			}
		}
		// Nothing changed in etcd: no rebalance request, node-3 still a member.
		ctx := contextTimeout(t, 5*time.Second)
		if resp, err := cli.Get(ctx, "/clusterkit/default/rebalance-request"); err != nil || len(resp.Kvs) != 0 {
			t.Fatalf("after refused admin calls: rebalance request %v, %v; want none", resp, err)
		}
		if resp, err := cli.Get(ctx, "/clusterkit/default/members/node-3"); err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("after refused admin calls: node-3's member key %v, %v; want it", resp, err)
		}
		if logs.FilterMessage("admin request").Len() != 0 {
			t.Fatalf("refused admin calls were logged as admin requests")
		}
	})

	// Readers run concurrently with the rebalance and the removal, for the
	// race detector.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, path := range []string{"/cluster", "/partitions?key=k", "/partitions/7", "/health/detailed", "/ready", "/metrics"} {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := httpClient.Get("http://" + clustertest.Addr(nodes[1]) + path)
				if err != nil {
					t.Errorf("GET %s: %v", path, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("GET %s during changes: status %d", path, resp.StatusCode)
				}
			}
		})
	}
	t.Cleanup(func() { close(stop); readers.Wait() })

	t.Run("rebalance changes the ETag", func(t *testing.T) {
		etags := map[string]string{}
		versions := map[string]int64{}
		for _, n := range nodes {
			var c apiCluster
			resp := getJSON(t, n, "/cluster", http.StatusOK, &c)
			etags[n.GetMyNodeID()], versions[n.GetMyNodeID()] = resp.Header.Get("ETag"), c.AssignmentVersion
		}
		resp, b := call(t, nodes[1], http.MethodPost, "/rebalance", "{}", "Authorization", "Bearer "+testToken)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /rebalance: status %d, want 202; body %s", resp.StatusCode, b)
		}
		var ok map[string]string
		if err := json.Unmarshal(b, &ok); err != nil || ok["status"] != "started" {
			t.Fatalf("POST /rebalance: body %s, want status started", b)
		}
		// A manual rebalance writes a new map even when nothing moves.
		for _, n := range nodes {
			id := n.GetMyNodeID()
			clustertest.Eventually(t, 10*time.Second, func() bool {
				resp, b := call(t, n, http.MethodGet, "/cluster", "", "If-None-Match", etags[id])
				if resp.StatusCode == http.StatusNotModified {
					return false
				}
				var c apiCluster
				if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &c) != nil {
					t.Fatalf("GET /cluster on %s: status %d, body %s", id, resp.StatusCode, b)
				}
				if c.AssignmentVersion <= versions[id] {
					t.Fatalf("GET /cluster on %s: 200 with the old version %d, new ETag %s vs %s", id, c.AssignmentVersion, resp.Header.Get("ETag"), etags[id])
				}
				return true
			}, "%s kept answering 304 to its old ETag after the rebalance", id)
		}
		if e := logs.FilterMessage("admin request").Len(); e != 0 {
			t.Fatalf("node-1 logged %d admin requests, but the rebalance went to node-2", e)
		}
		clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "never agreed after the rebalance")
	})

	t.Run("remove a node", func(t *testing.T) {
		resp, b := call(t, n1, http.MethodPost, "/nodes/nobody/remove", "", "Authorization", "Bearer "+testToken)
		assertJSONError(t, "POST /nodes/nobody/remove", resp, b, http.StatusNotFound)
		before := call1ETag(t, n1)

		resp, b = call(t, n1, http.MethodPost, "/nodes/node-3/remove", "", "Authorization", "Bearer "+testToken)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /nodes/node-3/remove: status %d, want 200; body %s", resp.StatusCode, b)
		}
		var ok map[string]string
		if err := json.Unmarshal(b, &ok); err != nil || ok["status"] != "removed" || ok["node"] != "node-3" {
			t.Fatalf("POST /nodes/node-3/remove: body %s", b)
		}
		if logs.FilterMessage("admin request").FilterField(zap.String("member", "node-3")).Len() != 1 {
			t.Fatalf("want one admin request line for the removal: %v", logs.FilterMessage("admin request").All())
		}
		clustertest.Eventually(t, 10*time.Second, func() bool {
			var c apiCluster
			resp := getJSON(t, n1, "/cluster", http.StatusOK, &c)
			return len(c.Members) == 2 && resp.Header.Get("ETag") != before && !slices.Contains(memberIDs(c.Members), "node-3")
		}, "node-3 still listed by node-1's /cluster")
		clustertest.Eventually(t, 10*time.Second, func() bool {
			resp, b := call(t, n3, http.MethodGet, "/ready", "")
			if resp.StatusCode == http.StatusOK {
				return false
			}
			var r apiReady
			if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(b, &r) != nil || r.Ready || r.Error == "" || len(r.Reasons) == 0 {
				t.Fatalf("/ready on the removed node: status %d, body %s; want 503 with reasons", resp.StatusCode, b)
			}
			return true
		}, "the removed node-3 still says it is ready")
		// Two nodes cannot hold RF 3: degraded, with the reason.
		clustertest.Eventually(t, 10*time.Second, func() bool {
			var d apiHealth
			getJSON(t, n1, "/health/detailed", http.StatusOK, &d)
			return d.Status == clusterkit.HealthDegraded && d.UnderReplicated == 16 && d.TotalNodes == 2 &&
				len(d.Reasons) == 1 && strings.Contains(d.Reasons[0], "under-replicated")
		}, "/health/detailed never said degraded (under-replicated) after the removal")
	})
}

// lifecycleLines counts the logged lines, leaving out the health loop's,
// which can come at any time.
func lifecycleLines(logs *observer.ObservedLogs) int {
	n := 0
	for _, e := range logs.All() {
		if !strings.Contains(e.Message, "health") {
			n++
		}
	}
	return n
}

func call1ETag(t *testing.T, ck *clusterkit.ClusterKit) string {
	resp, _ := call(t, ck, http.MethodGet, "/cluster", "")
	return resp.Header.Get("ETag")
}

func nodeIDs(nodes []clusterkit.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

func memberIDs(ms []apiMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// serve runs one request through h without a network.
func serve(h http.Handler, method, target, body string, header ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestHTTPHandlerBeforeStart checks the exported handler of a node that is
// not started, with and without a ClusterToken, and mounted under a prefix
// on an application's own server.
func TestHTTPHandlerBeforeStart(t *testing.T) {
	open := clustertest.Options(t, "no-token")
	open.ClusterToken = ""
	ckOpen, err := clusterkit.New(open)
	if err != nil {
		t.Fatal(err)
	}
	defer ckOpen.Stop(context.Background())
	ck, err := clusterkit.New(clustertest.Options(t, "with-token"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Stop(context.Background())
	auth := []string{"Authorization", "Bearer " + testToken}

	cases := []struct {
		name               string
		ck                 *clusterkit.ClusterKit
		method, path, body string
		header             []string
		status             int
	}{
		{"liveness", ck, "GET", "/health", "", nil, 200},
		{"cluster", ck, "GET", "/cluster", "", nil, 200},
		{"metrics", ck, "GET", "/metrics", "", nil, 200},
		{"ready", ck, "GET", "/ready", "", nil, 503},
		{"detailed", ck, "GET", "/health/detailed", "", nil, 503},
		{"partitions", ck, "GET", "/partitions", "", nil, 503},
		{"partition by key", ck, "GET", "/partitions?key=a", "", nil, 503},
		{"partition by id", ck, "GET", "/partitions/0", "", nil, 503},
		{"rebalance with token", ck, "POST", "/rebalance", "", auth, 503},
		{"remove with token", ck, "POST", "/nodes/x/remove", "{}", auth, 503},
		{"rebalance without token", ck, "POST", "/rebalance", "", nil, 401},
		{"join", ck, "POST", "/cluster/join", `{"node_id":"x"}`, auth, 503},
		{"rebalance, no token configured", ckOpen, "POST", "/rebalance", "", nil, 403},
		{"remove, no token configured", ckOpen, "POST", "/nodes/x/remove", "", auth, 403},
		{"join, no token configured", ckOpen, "POST", "/cluster/join", `{"node_id":"x"}`, nil, 503},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(c.ck.Handler(), c.method, c.path, c.body, c.header...)
			if c.status >= 400 && c.path != "/ready" && c.path != "/health/detailed" { // those two answer their full body
				assertJSONError(t, c.method+" "+c.path, rec.Result(), rec.Body.Bytes(), c.status)
				return
			}
			if rec.Code != c.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", c.method, c.path, rec.Code, c.status, rec.Body)
			}
		})
	}

	var r apiReady
	if err := json.Unmarshal(serve(ck.Handler(), "GET", "/ready", "").Body.Bytes(), &r); err != nil || r.Ready || !slices.Equal(r.Reasons, []string{"not started"}) {
		t.Fatalf("/ready before Start: %+v, %v; want not ready, reason \"not started\"", r, err)
	}
	var d apiHealth
	if err := json.Unmarshal(serve(ck.Handler(), "GET", "/health/detailed", "").Body.Bytes(), &d); err != nil ||
		d.Status != clusterkit.HealthCritical || d.Error == "" || len(d.Reasons) == 0 {
		t.Fatalf("/health/detailed before Start: %+v, %v; want critical with reasons", d, err)
	}
	var c apiCluster
	if err := json.Unmarshal(serve(ck.Handler(), "GET", "/cluster", "").Body.Bytes(), &c); err != nil ||
		c.AssignmentVersion != 0 || c.Members == nil || len(c.Members) != 0 || c.Partitions == nil || len(c.Partitions) != 0 {
		t.Fatalf("/cluster before Start: %+v, %v; want version 0 and empty lists", c, err)
	}

	// Mounted by an application under a prefix.
	mux := http.NewServeMux()
	mux.Handle("/clusterkit/", http.StripPrefix("/clusterkit", ck.Handler()))
	app := httptest.NewServer(mux)
	defer app.Close()
	for path, want := range map[string]int{"/clusterkit/health": 200, "/clusterkit/nope": 404, "/clusterkit/rebalance": 405} {
		resp, err := app.Client().Get(app.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s on the application's server: status %d, want %d; body %s", path, resp.StatusCode, want, b)
		}
	}
}
