package clusterkit

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// handleToken serves GET /cluster/token: the join token (JoinToken), for
// a caller that holds an accepted token — a plain secret or a replaced
// one — and wants the current, pinned form. After a rotation, when this
// node's own ClusterToken is not the current secret any more, a caller
// that presents the current one gets it back in pinned form; others get
// 409 saying so.
func (ck *ClusterKit) handleToken(w http.ResponseWriter, r *http.Request) {
	if !ck.adminAuthorized(w, r) {
		return
	}
	tok, err := ck.currentToken()
	if errors.Is(err, ErrUnauthorized) {
		presented, _ := bearerToken(r)
		if rec, ok := ck.loadSecrets(r.Context()); ok && subtle.ConstantTimeCompare([]byte(hashSecret(tokenSecret(presented))), []byte(rec.Current)) == 1 {
			tok, err = ck.tokenFor(tokenSecret(presented)), nil
		}
	}
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, ErrUnauthorized) {
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// rotateRequest is the optional body of POST /cluster/secret/rotate.
type rotateRequest struct {
	// Window is a Go duration ("24h"); empty: DefaultSecretWindow.
	Window string `json:"window"`
}

// handleRotateSecret serves POST /cluster/secret/rotate: RotateSecret,
// answered 200 with the new token (shown only here) and the end of the
// replaced secret's window.
func (ck *ClusterKit) handleRotateSecret(w http.ResponseWriter, r *http.Request) {
	if !ck.adminAuthorized(w, r) {
		return
	}
	var req rotateRequest
	if status, err := decodeBody(w, r, &req, maxAdminBody, true, true); err != nil {
		writeError(w, status, "rotate request: "+err.Error())
		return
	}
	var window time.Duration
	if req.Window != "" {
		var err error
		if window, err = time.ParseDuration(req.Window); err != nil {
			writeError(w, http.StatusBadRequest, "rotate request: window: "+err.Error())
			return
		}
	}
	ck.log.Info("admin request", zap.String("action", "rotate-secret"), zap.String("remote", r.RemoteAddr))
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	rot, err := ck.RotateSecret(ctx, window)
	if err != nil {
		status := adminStatus(err)
		if errors.Is(err, ErrInvalidOptions) {
			status = http.StatusBadRequest
		}
		writeError(w, status, err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, rot)
}
