package clusterkit

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NodeSpec names a node a plan preview adds: its ID, zone and weight
// (weight 0 means 1, as Options.Weight).
type NodeSpec struct {
	ID     string  `json:"id"`
	Zone   string  `json:"zone,omitempty"`
	Weight float64 `json:"weight,omitempty"`
}

// ParseNodeSpec parses "ID[:zone[:weight]]". Errors wrap
// ErrInvalidArgument.
func ParseNodeSpec(s string) (NodeSpec, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return NodeSpec{}, fmt.Errorf("%w: node %q: want ID[:zone[:weight]]", ErrInvalidArgument, s)
	}
	n := NodeSpec{ID: parts[0]}
	if len(parts) > 1 {
		n.Zone = parts[1]
	}
	if len(parts) > 2 {
		w, err := strconv.ParseFloat(parts[2], 64)
		if err != nil {
			return NodeSpec{}, fmt.Errorf("%w: node %q: weight %q is not a number", ErrInvalidArgument, s, parts[2])
		}
		n.Weight = w
	}
	return n, nil
}

// PlanPreview is what a rebalance would move now (a dry run): computed by
// the leader's own planner from this node's view of the cluster, with the
// nodes of the PlanChange added or removed. Nothing is written.
type PlanPreview struct {
	// AssignmentVersion is the version of the map the preview starts from.
	AssignmentVersion int64 `json:"assignment_version"`
	// Nodes are the nodes planned for, sorted.
	Nodes []string `json:"nodes"`
	// Moves counts (partition, node) pairs that would receive data;
	// PrimaryChanges the partitions whose primary would change.
	Moves          int `json:"moves"`
	PrimaryChanges int `json:"primary_changes"`
	// PerNode has one entry per node that serves or would serve anything.
	PerNode []NodePlanDelta `json:"per_node"`
	// Partitions lists every partition whose serving set or primary
	// would change.
	Partitions []PartitionPlanDelta `json:"partitions"`
}

// NodePlanDelta is one node's share of a preview: partitions it serves now
// and would serve (Before, After), and the ones it gains and loses.
type NodePlanDelta struct {
	Node   string `json:"node"`
	Before int    `json:"before"`
	After  int    `json:"after"`
	Gains  []int  `json:"gains"`
	Losses []int  `json:"losses"`
}

// PartitionPlanDelta is one partition's serving set now and planned
// (primary first).
type PartitionPlanDelta struct {
	Partition int      `json:"partition"`
	From      []string `json:"from"`
	To        []string `json:"to"`
}

// PlanChange is the membership change a preview assumes: nodes that join
// and live members that leave.
type PlanChange struct {
	Add    []NodeSpec `json:"add,omitempty"`
	Remove []string   `json:"remove,omitempty"`
}

// PreviewPlan returns what a manual rebalance would move now, with change
// applied to the membership first, without writing anything. It runs the
// leader's planner (reconcile, placement.Plan) on this node's view, so it
// honours cordons, drains and zones as a real rebalance would. Errors wrap
// ErrInvalidArgument (a malformed or duplicate node, a bad weight),
// ErrNotFound (removing a node that is not a live member) or
// ErrNotStarted.
func (ck *ClusterKit) PreviewPlan(change PlanChange) (*PlanPreview, error) {
	r, err := ck.running()
	if err != nil {
		return nil, err
	}
	in := r.plannerInput(time.Now(), nil)
	if in.assign == nil {
		return nil, ErrNotStarted
	}
	if err := applyPlanChange(&in, change); err != nil {
		return nil, err
	}
	o := &ck.opts
	in.delay, in.maintShare, in.maintWindow = o.RebalanceDelay, o.Maintenance.Share, o.Maintenance.Window
	in.manual, in.manualNode, in.control = "preview", ck.opts.NodeID, nil
	out, err := reconcile(in)
	if err != nil {
		return nil, fmt.Errorf("clusterkit: preview: %w", err)
	}
	next := out.assign
	if next == nil {
		next = in.assign
	}
	return previewOf(in.assign, next), nil
}

// applyPlanChange adds and removes members of in as change says.
func applyPlanChange(in *reconcileInput, change PlanChange) error {
	in.departed = maps.Clone(in.departed)
	if in.departed == nil {
		in.departed = map[string]departure{}
	}
	for _, id := range change.Remove {
		m, ok := in.members[id]
		if !ok {
			return fmt.Errorf("%w: preview: node %q to remove is not a live member", ErrNotFound, id)
		}
		delete(in.members, id)
		in.departed[id] = departure{Record: m, Reason: LeaveRemovedByAdmin, At: in.now}
	}
	for _, n := range change.Add {
		switch {
		case len(n.ID) > 128 || !namePattern.MatchString(n.ID):
			return fmt.Errorf("%w: preview: node ID %q: 1 to 128 characters of [A-Za-z0-9._-]", ErrInvalidArgument, n.ID)
		case math.IsNaN(n.Weight) || math.IsInf(n.Weight, 0) || n.Weight < 0:
			return fmt.Errorf("%w: preview: node %q: weight must be a finite number ≥ 0, got %v", ErrInvalidArgument, n.ID, n.Weight)
		}
		if _, ok := in.members[n.ID]; ok {
			return fmt.Errorf("%w: preview: node %q to add is already a member", ErrInvalidArgument, n.ID)
		}
		w := n.Weight
		if w == 0 {
			w = 1
		}
		in.members[n.ID] = memberRecord{ID: n.ID, Zone: n.Zone, Weight: w, State: memberActive, Healthy: true, Incarnation: 1}
		delete(in.departed, n.ID)
	}
	return nil
}

// previewOf compares the serving sets of cur with the Targets of next.
func previewOf(cur, next *assignment) *PlanPreview {
	pv := &PlanPreview{AssignmentVersion: cur.Version, PerNode: []NodePlanDelta{}, Partitions: []PartitionPlanDelta{}}
	for _, pn := range next.Planned {
		pv.Nodes = append(pv.Nodes, pn.ID)
	}
	per := map[string]*NodePlanDelta{}
	node := func(id string) *NodePlanDelta {
		if per[id] == nil {
			per[id] = &NodePlanDelta{Node: id, Gains: []int{}, Losses: []int{}}
		}
		return per[id]
	}
	for p, ps := range cur.Partitions {
		from, to := ps.Serving, next.Partitions[p].Target
		for _, n := range from {
			node(n).Before++
			if !slices.Contains(to, n) {
				node(n).Losses = append(node(n).Losses, p)
			}
		}
		for _, n := range to {
			node(n).After++
			if !slices.Contains(from, n) {
				node(n).Gains = append(node(n).Gains, p)
				pv.Moves++
			}
		}
		primaryChanged := len(from) > 0 && len(to) > 0 && from[0] != to[0]
		if primaryChanged {
			pv.PrimaryChanges++
		}
		if primaryChanged || len(symmetricDiff(from, to)) > 0 {
			pv.Partitions = append(pv.Partitions, PartitionPlanDelta{Partition: p, From: slices.Clone(from), To: slices.Clone(to)})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(per)) {
		pv.PerNode = append(pv.PerNode, *per[id])
	}
	return pv
}
