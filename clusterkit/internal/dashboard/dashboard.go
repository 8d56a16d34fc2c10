// Package dashboard is the operator's web page that every ClusterKit node
// serves (at /ui/ of its HTTP API): members, leader, a partition map grid,
// rebalance progress, health and the admin operations, updated live.
//
// The page is static and self-contained: its HTML, script and style are
// embedded in the binary with go:embed and it fetches nothing from other
// origins (the machines may have no internet). It reads the node's JSON API
// through URLs relative to its own (../cluster, ../health/detailed, …), so
// it works wherever the API is mounted, as long as the page sits one level
// below the API's root. Admin calls carry the token the operator types into
// the page as "Authorization: Bearer <token>"; the page keeps it in the
// tab's sessionStorage only.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy allows the page's own script, style and API calls
// and nothing else: no other origin, no inline script, no framing (the
// page holds admin buttons).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the page: "/" is the page itself, "/app.js" and
// "/style.css" its script and style; any other path answers 404. Mount it
// with http.StripPrefix so that the page's root is the prefix (e.g.
// "/ui/"). It answers GET and HEAD, with ETag / If-None-Match, and is safe
// for concurrent use.
func Handler() http.Handler {
	files, err := embeddedFiles()
	if err != nil {
		// The files are compiled in: reading them cannot fail.
		panic("dashboard: embedded files: " + err.Error())
	}
	assets := map[string]asset{}
	for p, b := range files {
		sum := sha256.Sum256(b)
		name := "/" + path.Base(p)
		if name == "/index.html" {
			name = "/"
		}
		assets[name] = asset{body: b, contentType: contentType(p), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.URL.Path]
		if !ok {
			http.Error(w, "no such dashboard file", http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// embeddedFiles returns the embedded files' contents by path
// ("static/app.js").
func embeddedFiles() (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[p], err = static.ReadFile(p)
		return err
	})
	return files, err
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}
