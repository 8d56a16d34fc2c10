package clusterkit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// FuzzHandler sends arbitrary requests (method, target with query, the
// Authorization and If-None-Match headers, body) to the HTTP API of a
// running node and of a node that was never started, and checks that the
// answer is well formed: never a 500 (a recovered panic), a JSON body with
// a non-empty "error" for every error status, Allow on every 405.
//
// The running node's token is random, so the fuzzer cannot change the
// cluster; the idle node's token is the seeds' "test-token", so admin
// bodies are parsed past the token check (the action then answers 503).
// The seed corpus is in testdata/fuzz/FuzzHandler.
func FuzzHandler(f *testing.F) {
	srv := etcdtest.Start(f)
	var secret [16]byte
	rand.Read(secret[:])
	o := clustertest.Options(f, "node-1")
	o.Etcd.Endpoints = srv.Endpoints()
	o.ClusterToken = hex.EncodeToString(secret[:])
	live := clustertest.Start(f, o, nil)
	clustertest.Eventually(f, 30*time.Second, func() bool { return clustertest.Agreed(live) }, "the fuzzed node never settled")
	idle, err := clusterkit.New(clustertest.Options(f, "idle"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { idle.Stop(context.Background()) })
	handlers := map[string]http.Handler{"running": live.Handler(), "idle": idle.Handler()}

	f.Fuzz(func(t *testing.T, method, target, authorization, ifNoneMatch string, body []byte) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		for name, h := range handlers {
			req, err := http.NewRequest(method, "http://clusterkit"+target, bytes.NewReader(body))
			if err != nil {
				return // the server would refuse it before any handler
			}
			req.TLS = &tls.ConnectionState{} // as over https: the idle node is secure
			req.RequestURI = target
			req.RemoteAddr = "127.0.0.1:1"
			for k, v := range map[string]string{"Authorization": authorization, "If-None-Match": ifNoneMatch} {
				if v == "" {
					continue
				}
				if strings.ContainsAny(v, "\r\n\x00") {
					return // not a valid header value; the server would refuse it
				}
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			checkAnswer(t, name, req, rec)
		}
	})
}

// checkAnswer checks one answer of the API for well-formedness.
func checkAnswer(t *testing.T, node string, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	what := node + ": " + req.Method + " " + req.RequestURI
	switch rec.Code {
	case http.StatusOK, http.StatusAccepted, http.StatusNotModified,
		http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect,
		http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		t.Fatalf("%s: status %d; body %s", what, rec.Code, rec.Body)
	}
	if rec.Code == http.StatusNotModified || rec.Header().Get("Location") != "" {
		return // a 304 has no body; the mux redirects to the cleaned path
	}
	if rec.Code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
		t.Fatalf("%s: 405 without Allow", what)
	}
	if rec.Code == http.StatusOK && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		if req.URL.Path != "/metrics" {
			t.Fatalf("%s: plain text answer", what)
		}
		return
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: status %d with Content-Type %q; body %q", what, rec.Code, ct, rec.Body)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s: status %d with a body that is not JSON: %q", what, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("%s: status %d without an error message: %s", what, rec.Code, rec.Body)
		}
	}
}
