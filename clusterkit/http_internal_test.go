package clusterkit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestHTTPPanicIsRecovered checks the API's last line of defence: a
// handler that panics is answered 500 with a JSON error and logged, and
// http.ErrAbortHandler still aborts.
func TestHTTPPanicIsRecovered(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	ck := &ClusterKit{log: zap.New(core)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("GET /abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	h := &apiHandler{ck: ck, mux: mux}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	var body map[string]string
	if rec.Code != http.StatusInternalServerError || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["error"] == "" {
		t.Fatalf("panicking handler: status %d, body %q; want 500 with a JSON error", rec.Code, rec.Body)
	}
	if logs.FilterMessage("http handler panicked").Len() != 1 {
		t.Fatalf("the panic was not logged once: %v", logs.All())
	}

	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("ErrAbortHandler: recovered %v, want it re-panicked", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/abort", nil))
}
