package clusterkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit/internal/dashboard"
)

// Request body limits.
const (
	// maxJoinBody bounds a join request (with its CSR); maxAdminBody an
	// admin call's (optional, empty) JSON object.
	maxJoinBody  = 16 << 10
	maxAdminBody = 4 << 10
)

// Handler returns this node's HTTP API as an http.Handler, so that an
// application can mount it on its own server (under a prefix with
// http.StripPrefix); Start also serves it on HTTPAddr. It is safe for
// concurrent use and works before Start (the endpoints that need a running
// node answer 503) and after Stop.
//
// Read-only endpoints, all JSON except /metrics:
//
//	GET  /cluster            the cluster as this node sees it; ETag and If-None-Match
//	GET  /partitions         every partition; with ?key=K, the partition of key K
//	GET  /partitions/{id}    one partition ("partition-3" or "3") and its nodes
//	GET  /health             liveness: 200 while the process serves HTTP
//	GET  /ready              200 once registered, holding a map and in touch with etcd; else 503
//	GET  /health/detailed    HealthCheck: 200 when healthy or degraded, 503 when critical
//	GET  /metrics            Prometheus text format from the node's registry
//	GET  /rebalance/preview  PreviewPlan: what a rebalance would move (?add=ID[:zone[:weight]]&remove=ID)
//	GET  /handoffs           every node's failing handoffs (stuck: failing longer than its HandoffTimeout)
//	GET  /operations         cordoned and draining nodes, with a drain's progress
//	GET  /ui/                the operator's dashboard (HTML; it calls the endpoints here)
//
// Start serves the API on HTTPAddr over TLS with the node's cluster
// certificate and over plain HTTP on the same port (secure embedded mode),
// over TLS only with Options.HTTPTLS, or over plain HTTP only
// (InsecurePlaintext, or external etcd without HTTPTLS).
//
// Token-protected endpoints: the request must carry the ClusterToken as
// "Authorization: Bearer <token>" (the ck1. join token or its secret part),
// or it is refused with 401 and changes nothing; over plain HTTP to a node
// that serves TLS it is refused with 403 ("use https://") before the token
// is looked at. A node without a ClusterToken refuses the admin endpoints with
// 403 (they would be open to anyone); its join endpoint stays open, as
// Options.ClusterToken documents.
//
//	POST /cluster/join           used by joining embedded nodes, and by RequestClientCertificate
//	POST /rebalance              RebalancePartitions; 202 once the leader started it
//	POST /nodes/{id}/remove      RemoveNode (OnNodeLeave with removed_by_admin)
//	POST /nodes/{id}/cordon      CordonNode; /drain DrainNode; /uncordon UncordonNode
//	POST /rebalance/end-delay    EndRebalanceDelay
//	POST /partitions/{id}/cancel-handoff  CancelHandoff
//	POST /maintenance/on|off     SetMaintenance
//	GET  /cluster/token          JoinToken: {"token": "ck1.<ca-sha256>.<secret>"}
//	POST /cluster/secret/rotate  RotateSecret; body {} or {"window": "24h"}
//
// Authenticated by the caller's cluster certificate (mutual TLS) instead:
//
//	POST /cluster/certificate    renew the caller's certificate (certrenew.go)
//
// The admin endpoints take no parameters; a body, if sent, must be the
// empty JSON object {} (400 otherwise, 413 beyond 4 KiB).
//
// Errors are JSON objects {"error": "..."} with the matching status: 400
// malformed request, 401/403 token, 404 unknown path, partition or node, 405
// wrong method (with Allow), 413 body too large, 503 node not running or
// etcd unreachable, 504 the action timed out. A panic in a handler is
// recovered, logged and answered with 500. Nothing is logged per read
// request; admin actions are logged at info.
func (ck *ClusterKit) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cluster/join", ck.handleJoin)
	mux.HandleFunc("GET /cluster", ck.handleCluster)
	mux.HandleFunc("GET /partitions", ck.handlePartitions)
	mux.HandleFunc("GET /partitions/{id}", ck.handlePartition)
	mux.HandleFunc("GET /health", ck.handleHealth)
	mux.HandleFunc("GET /ready", ck.handleReady)
	mux.HandleFunc("GET /health/detailed", ck.handleHealthDetailed)
	mux.HandleFunc("GET /metrics", ck.metricsHandler())
	mux.HandleFunc("POST /rebalance", ck.handleRebalance)
	mux.HandleFunc("POST /nodes/{id}/remove", ck.handleRemoveNode)
	mux.HandleFunc("POST /rebalance/end-delay", ck.handleEndDelay)
	mux.HandleFunc("POST /maintenance/{state}", ck.handleMaintenance)
	mux.HandleFunc("POST /nodes/{id}/{op}", ck.handleNodeOperation)
	mux.HandleFunc("GET /operations", ck.handleOperations)
	mux.HandleFunc("GET /rebalance/preview", ck.handlePreview)
	mux.HandleFunc("POST /partitions/{id}/cancel-handoff", ck.handleCancelHandoff)
	mux.HandleFunc("GET /handoffs", ck.handleHandoffs)
	mux.HandleFunc("GET /cluster/token", ck.handleToken)
	mux.HandleFunc("POST /cluster/secret/rotate", ck.handleRotateSecret)
	mux.HandleFunc("POST /cluster/certificate", ck.handleRenewCertificate)
	mux.Handle("GET /ui/", http.StripPrefix("/ui", dashboard.Handler()))
	return &apiHandler{ck: ck, mux: mux}
}

// apiHandler wraps the mux: JSON bodies for the mux's own 404 and 405
// answers, and panic recovery.
type apiHandler struct {
	ck  *ClusterKit
	mux *http.ServeMux
}

func (h *apiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.ck.log.Error("http handler panicked", zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.Any("panic", v), zap.Stack("stack"))
			if !rw.wroteHeader {
				writeError(rw, http.StatusInternalServerError, "internal error")
			}
		}
	}()
	if _, pattern := h.mux.Handler(r); pattern == "" {
		// The mux answers itself: not found, method not allowed (it sets
		// Allow) or a redirect to the cleaned path. Give the errors a JSON
		// body.
		rw.jsonErrors = true
	}
	h.mux.ServeHTTP(rw, r)
}

// responseWriter records whether the header was written and, with
// jsonErrors, replaces the plain-text body of a 404 or 405 by a JSON one.
type responseWriter struct {
	http.ResponseWriter
	wroteHeader bool
	jsonErrors  bool
	swallow     bool // the JSON error is written; drop the mux's text
}

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if w.jsonErrors && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		msg := "no such endpoint"
		if code == http.StatusMethodNotAllowed {
			msg = "method not allowed; allowed: " + w.Header().Get("Allow")
		}
		w.swallow = true
		w.Header().Del("Content-Length")
		writeJSON(w.ResponseWriter, code, map[string]string{"error": msg})
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// authorized checks the bearer token: its secret part must be one the
// cluster accepts (tokenAccepted: this node's secret — ClusterToken's or
// generated — or after a rotation the current secret or a replaced one
// within its window), compared in constant time. With no secret every
// request is authorized (the join endpoint's documented behaviour; the
// admin endpoints use adminAuthorized). Callers refuse plain HTTP first
// (plainRefused).
func (ck *ClusterKit) authorized(r *http.Request) bool {
	secret := ck.clusterSecret()
	if secret == "" {
		return true
	}
	tok, ok := bearerToken(r)
	return ok && ck.tokenAccepted(r.Context(), tok)
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const scheme = "bearer " // auth schemes are case-insensitive (RFC 9110)
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return h[len(scheme):], true
}

// clusterSecret is the secret join and admin calls must carry: the
// node's (ClusterToken's or generated) in secure embedded mode, the
// ClusterToken's otherwise.
func (ck *ClusterKit) clusterSecret() string {
	if r := ck.active.Load(); r != nil && r.tls != nil {
		return r.tls.secret
	}
	return tokenSecret(ck.opts.ClusterToken)
}

// plainRefused answers 403 to a token-protected request that came over
// plain HTTP to a node that serves TLS (the token must never travel in
// clear), and reports whether it did.
func (ck *ClusterKit) plainRefused(w http.ResponseWriter, r *http.Request) bool {
	if r.TLS != nil || ck.opts.InsecurePlaintext || (!ck.opts.secure() && ck.httpTLS == nil) {
		return false
	}
	writeError(w, http.StatusForbidden, "the cluster token is not accepted over plain HTTP: use https://")
	return true
}

// adminAuthorized answers 403 over plain HTTP (see plainRefused) and when
// no cluster secret is configured, 401 when the request lacks it, and
// reports whether the request may go on.
func (ck *ClusterKit) adminAuthorized(w http.ResponseWriter, r *http.Request) bool {
	if ck.plainRefused(w, r) {
		return false
	}
	if ck.clusterSecret() == "" {
		writeError(w, http.StatusForbidden, "admin endpoints are disabled: this node has no ClusterToken")
		return false
	}
	if !ck.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="clusterkit"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong cluster token")
		return false
	}
	return true
}

// handleJoin answers a joining node with the etcd client endpoints and,
// when it sends a CSR, its certificate (see signJoin). It changes nothing
// in etcd: the joining node registers itself through etcd. A refused
// request learns nothing about the cluster.
func (ck *ClusterKit) handleJoin(w http.ResponseWriter, r *http.Request) {
	if ck.plainRefused(w, r) {
		return
	}
	if !ck.authorized(r) {
		writeError(w, http.StatusUnauthorized, "missing or wrong cluster token")
		return
	}
	var req joinRequest
	if status, err := decodeBody(w, r, &req, maxJoinBody, false, false); err != nil {
		writeError(w, status, "join request: "+err.Error())
		return
	}
	run := ck.active.Load()
	if run == nil || run.ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "this node is not connected to etcd")
		return
	}
	eps, err := ck.etcdEndpoints(r.Context(), run.cli)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "cannot list etcd members: "+err.Error())
		return
	}
	ans := joinResponse{Cluster: ck.opts.ClusterName, Endpoints: eps}
	if status, msg := signJoin(run, &req, &ans); status != 0 {
		writeError(w, status, "join request: "+msg)
		return
	}
	ck.log.Info("join request answered", zapNode(req.NodeID), zap.Bool("certificate", ans.Cert != ""), zap.Bool("client", req.Client))
	writeJSON(w, http.StatusOK, ans)
}

// decodeBody decodes one JSON value of at most limit bytes into v, refusing
// trailing data, and unknown fields when strict (the join request is not
// strict, so that a newer node can send more). With optional, an empty
// body is accepted and leaves v as it is. On error it returns the status to
// answer: 413 for a body over the limit, 400 otherwise.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, limit int64, optional, strict bool) (int, error) {
	if r.Body == nil {
		if optional {
			return 0, nil
		}
		return http.StatusBadRequest, errors.New("malformed body: empty")
	}
	// MaxBytesReader tells the server to close the connection after a body
	// over the limit only through the server's own writer, not our wrapper.
	if rw, ok := w.(*responseWriter); ok {
		w = rw.ResponseWriter
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil {
		// Exactly one value: anything but white space after it is an error.
		var extra json.RawMessage
		if err2 := dec.Decode(&extra); err2 != io.EOF {
			if err2 == nil {
				err2 = errors.New("more than one JSON value")
			}
			err = err2
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body too large: the limit is %d bytes", limit)
	case errors.Is(err, io.EOF) && optional:
		return 0, nil
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, errors.New("malformed body: empty")
	default:
		return http.StatusBadRequest, fmt.Errorf("malformed body: %w", err)
	}
}

// metricsHandler serves the node's registry: the private one, or
// Options.Registerer when it is also a Gatherer (a *prometheus.Registry
// is). With another Registerer the application serves its metrics itself
// and /metrics answers 404.
func (ck *ClusterKit) metricsHandler() http.HandlerFunc {
	g := ck.metrics.gatherer
	if g == nil {
		return func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "metrics are not served here: Options.Registerer is not a prometheus.Gatherer")
		}
	}
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		// A failing collector must not hide the others.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      zap.NewStdLog(ck.log.Named("metrics")),
	})
	return h.ServeHTTP
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
