package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// adminTimeout bounds an admin action started over HTTP.
const adminTimeout = 15 * time.Second

// handleRebalance serves POST /rebalance: RebalancePartitions, answered
// 202 once the leader has started the rebalance.
func (ck *ClusterKit) handleRebalance(w http.ResponseWriter, r *http.Request) {
	if !ck.adminAuthorized(w, r) || !adminBody(w, r) {
		return
	}
	ck.log.Info("admin request", zap.String("action", "rebalance"), zap.String("remote", r.RemoteAddr))
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	if err := ck.RebalancePartitions(ctx); err != nil {
		writeError(w, adminStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "started", "node": ck.opts.NodeID})
}

// handleRemoveNode serves POST /nodes/{id}/remove: RemoveNode, answered
// 200 once the member is gone; 404 if id is not a live member.
func (ck *ClusterKit) handleRemoveNode(w http.ResponseWriter, r *http.Request) {
	if !ck.adminAuthorized(w, r) || !adminBody(w, r) {
		return
	}
	id := r.PathValue("id")
	if len(id) > 128 || !namePattern.MatchString(id) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid node ID %q: 1 to 128 characters of [A-Za-z0-9._-]", id))
		return
	}
	ck.log.Info("admin request", zap.String("action", "remove"), zapNode(id), zap.String("remote", r.RemoteAddr))
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	if err := ck.RemoveNode(ctx, id); err != nil {
		writeError(w, adminStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "removed", "node": id})
}

// handleEndDelay serves POST /rebalance/end-delay: EndRebalanceDelay,
// answered 200 once the leader applied it.
func (ck *ClusterKit) handleEndDelay(w http.ResponseWriter, r *http.Request) {
	ck.adminAction(w, r, "end-delay", ck.EndRebalanceDelay)
}

// handleMaintenance serves POST /maintenance/on and /maintenance/off:
// SetMaintenance, answered 200 once the leader applied it.
func (ck *ClusterKit) handleMaintenance(w http.ResponseWriter, r *http.Request) {
	var on bool
	switch r.PathValue("state") {
	case "on":
		on = true
	case "off":
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown maintenance state %q: use on or off", r.PathValue("state")))
		return
	}
	ck.adminAction(w, r, "maintenance-"+r.PathValue("state"), func(ctx context.Context) error { return ck.SetMaintenance(ctx, on) })
}

// adminAction runs an authorized admin action with adminTimeout and
// answers 200 {"status": "done", "action": name} or the error.
func (ck *ClusterKit) adminAction(w http.ResponseWriter, r *http.Request, name string, action func(context.Context) error) {
	if !ck.adminAuthorized(w, r) || !adminBody(w, r) {
		return
	}
	ck.log.Info("admin request", zap.String("action", name), zap.String("remote", r.RemoteAddr))
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	if err := action(ctx); err != nil {
		writeError(w, adminStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "done", "action": name, "node": ck.opts.NodeID})
}

// adminBody accepts an empty body or {} and answers 400/413 otherwise.
func adminBody(w http.ResponseWriter, r *http.Request) bool {
	var none struct{}
	if status, err := decodeBody(w, r, &none, maxAdminBody, true, true); err != nil {
		writeError(w, status, err.Error()+" (send no body, or {})")
		return false
	}
	return true
}

// adminStatus maps an admin action's error to a status code.
func adminStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default: // not started, stopped, etcd unreachable or contended
		return http.StatusServiceUnavailable
	}
}
