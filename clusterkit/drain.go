package clusterkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// NodeOperation is an operator's standing order for one node: cordoned (it
// gets no new partitions; nothing moves off it) or draining (its
// partitions move off through the normal handoff; it gets none). The empty
// value means none.
type NodeOperation string

// The operator states of a node.
const (
	NodeCordoned NodeOperation = "cordoned"
	NodeDraining NodeOperation = "draining"
)

// NodeOperationStatus is one node's operator state and, for a drain, its
// progress, as this node's view of the map shows it.
type NodeOperationStatus struct {
	Node      string        `json:"node"`
	Operation NodeOperation `json:"operation"`
	// By is the node whose API took the order; Since is when.
	By    string    `json:"by"`
	Since time.Time `json:"since"`
	// Applied: the leader has planned for it (the map says so).
	Applied bool `json:"applied"`
	// Partitions counts the partitions the node still serves or receives;
	// a drain is Done when it is applied and Partitions is 0.
	Partitions int  `json:"partitions"`
	Done       bool `json:"done"`
}

// operatorRecord is the value of operator/<nodeID>. Its owner is the
// operator: CordonNode and DrainNode put it, UncordonNode and RemoveNode
// delete it, through any node's API. The leader only reads it and mirrors
// it into the map's planned nodes (plannedNode.Op), so the order outlives
// leader changes and restarts of the node until an operator lifts it.
type operatorRecord struct {
	Op   NodeOperation `json:"op"`
	Node string        `json:"by"`
	At   time.Time     `json:"at"`
}

// CordonNode cordons live member id: from now on the leader plans no new
// partition for it and moves nothing off it (a drain in progress stops
// where it is; its finished moves stay). It returns once the leader has
// applied the order. ErrNotFound if id is not a live member.
func (ck *ClusterKit) CordonNode(ctx context.Context, id string) error {
	return ck.setNodeOperation(ctx, id, NodeCordoned)
}

// DrainNode drains live member id: the leader plans its partitions onto
// the other nodes, they move through the normal handoff (each new holder
// receives the data and is ready before id stops serving it), and then id
// holds nothing and stays a member until it stops; a Stop after that
// moves nothing. It returns once the leader has applied the order (the
// moves have started); NodeOperations shows the progress. UncordonNode
// cancels it. When every node is draining, nothing moves; a slot that only
// cordoned nodes could take is given up (the partition is
// under-replicated, as HealthCheck reports; a partition whose only holder
// is id keeps it). ErrNotFound if id is not a live member.
func (ck *ClusterKit) DrainNode(ctx context.Context, id string) error {
	return ck.setNodeOperation(ctx, id, NodeDraining)
}

// UncordonNode lifts a cordon or cancels a drain of node id and returns
// once the leader has applied it. A cancelled drain keeps the moves that
// finished; a partition still on its way keeps id in its serving set.
// Lifting nothing is not an error.
func (ck *ClusterKit) UncordonNode(ctx context.Context, id string) error {
	return ck.setNodeOperation(ctx, id, "")
}

// NodeOperations returns the nodes under an operator's order, sorted by
// node ID, with a drain's progress, as this node's view shows them. It is
// safe for concurrent use; nil before Start.
func (ck *ClusterKit) NodeOperations() []NodeOperationStatus {
	r := ck.active.Load()
	if r == nil || !ck.started.Load() { // r.follower is set during start
		return nil
	}
	var out []NodeOperationStatus
	r.follower.read(func(v *view) { out = v.nodeOperations() })
	return out
}

// setNodeOperation writes the operator record of id (op "" lifts the
// order) and waits until the map's planned node says the leader applied
// it.
func (ck *ClusterKit) setNodeOperation(ctx context.Context, id string, op NodeOperation) error {
	r, err := ck.running()
	if err != nil {
		return err
	}
	if len(id) > 128 || !namePattern.MatchString(id) {
		return fmt.Errorf("%w: node ID %q: 1 to 128 characters of [A-Za-z0-9._-]", ErrInvalidArgument, id)
	}
	name := string(op)
	if op == "" {
		name = "uncordon"
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var live, ordered bool
	r.follower.read(func(v *view) { _, live = v.members[id]; _, ordered = v.operator[id] })
	switch {
	case op != "" && !live:
		return fmt.Errorf("%w: node %q is not a live member", ErrNotFound, id)
	case op == "" && !live && !ordered:
		return nil // no order to lift, and no node a late order could reach
	}
	// Lifting an order writes a record without one (op ""), not a delete:
	// a key that stays lets writeIfUnchanged refuse a late order.
	b, _ := json.Marshal(operatorRecord{Op: op, Node: ck.opts.NodeID, At: time.Now().UTC()})
	key := ck.keys.operator(id)
	rev, err := r.writeIfUnchanged(rctx, key, false, clientv3.OpPut(key, string(b)))
	if err != nil {
		ck.metrics.etcdErrors.WithLabelValues("node_operation").Inc()
		return fmt.Errorf("clusterkit: %s node %q: %w", name, id, err)
	}
	ck.log.Info("node operation", zapNode(id), zap.String("operation", name))
	err = r.follower.waitFor(ctx, func(v *view) bool { return v.rev >= rev && v.operationApplied(id) })
	if err != nil && !errors.Is(err, ErrStopped) {
		return fmt.Errorf("clusterkit: %s node %q requested, not applied by the leader yet: %w", name, id, err)
	}
	return err
}

// operationApplied reports whether the map plans node id as its operator
// record says (a node the map does not plan has nothing to apply).
func (v *view) operationApplied(id string) bool {
	if v.assign == nil {
		return false
	}
	i := slices.IndexFunc(v.assign.Planned, func(pn plannedNode) bool { return pn.ID == id })
	if i < 0 {
		_, live := v.members[id]
		return !live
	}
	return v.assign.Planned[i].Op == v.operator[id].Op
}

// nodeOperations lists the operator records with their progress.
func (v *view) nodeOperations() []NodeOperationStatus {
	var out []NodeOperationStatus
	for id, rec := range v.operator {
		st := NodeOperationStatus{Node: id, Operation: rec.Op, By: rec.Node, Since: rec.At, Applied: v.operationApplied(id)}
		if v.assign != nil {
			for _, ps := range v.assign.Partitions {
				if slices.Contains(ps.Serving, id) || slices.ContainsFunc(ps.Incoming, func(in incoming) bool { return in.Node == id }) {
					st.Partitions++
				}
			}
		}
		st.Done = rec.Op == NodeDraining && st.Applied && st.Partitions == 0
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b NodeOperationStatus) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// applyOperator applies a change of an operator/<id> key to the view; false
// if key is not one.
func (d decoder) applyOperator(v *view, e watcher.Event) bool {
	id, ok := strings.CutPrefix(e.Key, d.keys.operatorPrefix())
	if !ok {
		return false
	}
	var rec operatorRecord
	if e.Type == watcher.Put && json.Unmarshal(e.Value, &rec) == nil && (rec.Op == NodeCordoned || rec.Op == NodeDraining) {
		if v.operator == nil {
			v.operator = map[string]operatorRecord{}
		}
		v.operator[id] = rec
	} else {
		delete(v.operator, id)
	}
	return true
}
