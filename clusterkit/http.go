package clusterkit

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
)

// Handler returns this node's HTTP API as an http.Handler, so that an
// application can mount it on its own server; Start also serves it on
// HTTPAddr. It is safe for concurrent use.
func (ck *ClusterKit) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cluster/join", ck.handleJoin)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": ck.opts.NodeID})
	})
	return mux
}

// authorized checks the bearer token in constant time. With no
// ClusterToken configured every request is authorized.
func (ck *ClusterKit) authorized(r *http.Request) bool {
	if ck.opts.ClusterToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(ck.opts.ClusterToken)) == 1
}

// handleJoin answers a joining node with the etcd client endpoints. It
// changes nothing: the joining node registers itself through etcd.
func (ck *ClusterKit) handleJoin(w http.ResponseWriter, r *http.Request) {
	if !ck.authorized(r) {
		writeError(w, http.StatusUnauthorized, "missing or wrong cluster token")
		return
	}
	var req joinRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed join request: "+err.Error())
		return
	}
	if ck.cli == nil {
		writeError(w, http.StatusServiceUnavailable, "this node is not connected to etcd yet")
		return
	}
	eps, err := ck.etcdEndpoints(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "cannot list etcd members: "+err.Error())
		return
	}
	ck.log.Info("join request answered", zapNode(req.NodeID))
	writeJSON(w, http.StatusOK, joinResponse{Cluster: ck.opts.ClusterName, Endpoints: eps})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
