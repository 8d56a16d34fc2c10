package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
)

// TestMountedOnTheAPI checks the page's place in a node's HTTP API (which
// serves it before Start too): /ui/ is the page, /ui redirects there, and
// the files the page loads resolve under /ui/.
func TestMountedOnTheAPI(t *testing.T) {
	ck, err := clusterkit.New(clustertest.Options(t, "node-1"))
	if err != nil {
		t.Fatal(err)
	}
	h := ck.Handler()
	for _, tc := range []struct {
		path     string
		status   int
		location string
		bodyHas  string
	}{
		{"/ui/", 200, "", "<title>ClusterKit</title>"},
		{"/ui", http.StatusTemporaryRedirect, "/ui/", ""}, // the mux's redirect to the subtree
		{"/ui/app.js", 200, "", "../cluster"},
		{"/ui/style.css", 200, "", "#grid"},
		{"/ui/missing", 404, "", "no such dashboard file"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != tc.status || rec.Header().Get("Location") != tc.location {
				t.Fatalf("GET %s: got %d Location %q, want %d Location %q", tc.path, rec.Code, rec.Header().Get("Location"), tc.status, tc.location)
			}
			if !strings.Contains(rec.Body.String(), tc.bodyHas) {
				t.Fatalf("GET %s: body does not contain %q", tc.path, tc.bodyHas)
			}
		})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/ui/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /ui/: got %d, want 405", rec.Code)
	}
}
