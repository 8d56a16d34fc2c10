package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// handleNodeOperation serves POST /nodes/{id}/cordon, /nodes/{id}/drain and
// /nodes/{id}/uncordon: CordonNode, DrainNode, UncordonNode, answered 200
// once the leader applied the order (a drain's progress: GET
// /operations); 400 for a malformed ID, 404 if id is not a live member.
func (ck *ClusterKit) handleNodeOperation(w http.ResponseWriter, r *http.Request) {
	id, verb := r.PathValue("id"), r.PathValue("op")
	var op NodeOperation
	switch verb {
	case "cordon":
		op = NodeCordoned
	case "drain":
		op = NodeDraining
	case "uncordon":
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown node operation %q: use cordon, drain, uncordon or remove", verb))
		return
	}
	if len(id) > 128 || !namePattern.MatchString(id) {
		if ck.adminAuthorized(w, r) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid node ID %q: 1 to 128 characters of [A-Za-z0-9._-]", id))
		}
		return
	}
	ck.adminAction(w, r, verb+" "+id, func(ctx context.Context) error { return ck.setNodeOperation(ctx, id, op) })
}

// handleOperations serves GET /operations: NodeOperations (the nodes under
// an operator's order, with a drain's progress).
func (ck *ClusterKit) handleOperations(w http.ResponseWriter, r *http.Request) {
	ops := ck.NodeOperations()
	if ops == nil {
		ops = []NodeOperationStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": ck.opts.NodeID, "operations": ops})
}

// handlePreview serves GET /rebalance/preview?add=ID[:zone[:weight]]&remove=ID
// (each repeatable): PreviewPlan, a dry run that writes nothing. 400 for a
// malformed node, 404 for removing a node that is not a live member.
func (ck *ClusterKit) handlePreview(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var change PlanChange
	for _, s := range q["add"] {
		n, err := ParseNodeSpec(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		change.Add = append(change.Add, n)
	}
	change.Remove = q["remove"]
	pv, err := ck.PreviewPlan(change)
	switch {
	case errors.Is(err, ErrInvalidArgument):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, adminStatus(err), err.Error())
	default:
		writeJSON(w, http.StatusOK, pv)
	}
}

// handleCancelHandoff serves POST /partitions/{id}/cancel-handoff:
// CancelHandoff, answered 200 once the leader applied it; 404 for an
// unknown partition or one that no node is receiving.
func (ck *ClusterKit) handleCancelHandoff(w http.ResponseWriter, r *http.Request) {
	p, ok := parsePartitionID(r.PathValue("id"), ck.opts.PartitionCount)
	if !ok {
		if ck.adminAuthorized(w, r) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no partition %q: use partition-N or N, 0 ≤ N < %d", r.PathValue("id"), ck.opts.PartitionCount))
		}
		return
	}
	ck.adminAction(w, r, "cancel-handoff "+PartitionID(p), func(ctx context.Context) error { return ck.CancelHandoff(ctx, p) })
}

// handleHandoffs serves GET /handoffs: every node's failing handoffs
// (ClusterFailingHandoffs), each with its receiving node; timeout is this
// node's HandoffTimeout.
func (ck *ClusterKit) handleHandoffs(w http.ResponseWriter, r *http.Request) {
	hs := ck.ClusterFailingHandoffs()
	if hs == nil {
		hs = []FailingHandoff{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": ck.opts.NodeID, "timeout": ck.opts.HandoffTimeout.String(), "failing": hs})
}
