package dashboard

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandlerServesThePage(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		name, method, path string
		status             int
		contentType        string
		bodyHas            string
	}{
		{"page", "GET", "/", 200, "text/html; charset=utf-8", `<script src="app.js" defer></script>`},
		{"script", "GET", "/app.js", 200, "text/javascript; charset=utf-8", "pollCluster"},
		{"style", "GET", "/style.css", 200, "text/css; charset=utf-8", "#grid"},
		{"head", "HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"index by name", "GET", "/index.html", 404, "text/plain; charset=utf-8", "no such dashboard file"},
		{"unknown", "GET", "/nope.js", 404, "text/plain; charset=utf-8", "no such dashboard file"},
		{"directory", "GET", "/static/app.js", 404, "text/plain; charset=utf-8", "no such dashboard file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("%s %s: got status %d, want %d", tc.method, tc.path, rec.Code, tc.status)
			}
			if got := rec.Header().Get("Content-Type"); got != tc.contentType {
				t.Fatalf("%s %s: got Content-Type %q, want %q", tc.method, tc.path, got, tc.contentType)
			}
			if !strings.Contains(rec.Body.String(), tc.bodyHas) {
				t.Fatalf("%s %s: body does not contain %q", tc.method, tc.path, tc.bodyHas)
			}
			if tc.status == 200 {
				if got := rec.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") || !strings.Contains(got, "frame-ancestors 'none'") {
					t.Fatalf("%s: got Content-Security-Policy %q, want one that allows only the page's origin and no framing", tc.path, got)
				}
			}
		})
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/app.js", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" || rec.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("got ETag %q and Cache-Control %q, want an ETag and no-cache", etag, rec.Header().Get("Cache-Control"))
	}
	req := httptest.NewRequest("GET", "/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Fatalf("If-None-Match %s: got %d with %d bytes, want 304 and no body", etag, rec.Code, rec.Body.Len())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/style.css", nil))
	if rec.Header().Get("ETag") == etag {
		t.Fatalf("app.js and style.css have the same ETag %s", etag)
	}
}

// TestNoOtherOrigin checks that the embedded files load nothing from
// another origin: the nodes may have no internet, and the page holds the
// cluster token.
func TestNoOtherOrigin(t *testing.T) {
	remote := regexp.MustCompile(`(?i)(\b(https?|wss?|ftp):|(src|href|action)\s*=\s*["']?//|url\(\s*["']?//|@import)`)
	files, err := embeddedFiles()
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		for i, line := range strings.Split(string(b), "\n") {
			if m := remote.FindString(line); m != "" {
				t.Errorf("%s:%d refers to another origin (%q): %s", p, i+1, m, strings.TrimSpace(line))
			}
		}
	}
}
