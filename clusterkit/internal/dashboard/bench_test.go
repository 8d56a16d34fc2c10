package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clusterkit-go/clusterkit/clusterkit/internal/dashboard"
)

// BenchmarkRender100Nodes1024Partitions loads the page in headless
// Chromium against a /cluster of 100 nodes × 1,024 partitions × RF 3 (every
// tenth partition with an incoming node) and reports how long one render
// takes (members table and partition grid: render-ms, median; render-max-ms)
// and, as ns/op, how long from navigation until the page has rendered.
// The view is synthetic: the page only reads JSON, and a 100-node cluster
// would measure the cluster, not the page.
func BenchmarkRender100Nodes1024Partitions(b *testing.B) {
	body, err := json.Marshal(syntheticView(100, 1024, 3))
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", http.StripPrefix("/ui", dashboard.Handler()))
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"1"`)
		if r.Header.Get("If-None-Match") == `"1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	mux.HandleFunc("GET /health/detailed", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"node":"node-1","status":"degraded","reasons":["102 partitions have an incoming node"],"etcd_connected":true,"registered":true,"total_nodes":100,"healthy_nodes":100}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := newBrowser(b)
	b.Logf("/cluster body: %d KiB", len(body)>>10)

	var renders []float64
	b.ResetTimer()
	for b.Loop() {
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/ui/")); err != nil {
			b.Fatal(err)
		}
		waitJS(b, ctx, 30*time.Second, `performance.getEntriesByName('clusterkit-render').length > 0`, "a render")
		renders = append(renders, evalJS[float64](b, ctx, `performance.getEntriesByName('clusterkit-render')[0].duration`))
	}
	b.StopTimer()
	if got := evalJS[int](b, ctx, `document.querySelectorAll('#members tbody tr').length`); got != 100 {
		b.Fatalf("member rows: got %d, want 100", got)
	}
	slices.Sort(renders)
	b.ReportMetric(renders[len(renders)/2], "render-ms")
	b.ReportMetric(renders[len(renders)-1], "render-max-ms")
}

// syntheticView is a /cluster body: nodes members, partitions partitions
// spread round-robin with rf serving nodes each.
func syntheticView(nodes, partitions, rf int) map[string]any {
	members := make([]map[string]any, nodes)
	for i := range members {
		members[i] = map[string]any{
			"id": fmt.Sprintf("node-%03d", i+1), "address": fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1),
			"zone": fmt.Sprintf("zone-%c", 'a'+i%3), "weight": 1, "services": map[string]string{}, "state": "active",
			"incarnation": 7587882345678901234 + int64(i), "started": time.Now().Add(-time.Hour).UTC(),
		}
	}
	parts := make([]map[string]any, partitions)
	for p := range parts {
		var replicas, incoming []string
		for r := 1; r < rf; r++ {
			replicas = append(replicas, members[(p+r*7)%nodes]["id"].(string))
		}
		if p%10 == 0 {
			incoming = append(incoming, members[(p+rf*7)%nodes]["id"].(string))
		}
		parts[p] = map[string]any{"id": fmt.Sprintf("partition-%d", p), "index": p, "primary": members[p%nodes]["id"],
			"replicas": replicas, "incoming": incoming, "epoch": 3 + p%5}
	}
	return map[string]any{"name": "bench", "node": "node-001", "leader": "node-001", "partition_count": partitions,
		"replication_factor": rf, "assignment_version": 42, "membership_revision": 7, "settled": false,
		"members": members, "partitions": parts}
}
