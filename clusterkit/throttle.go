package clusterkit

import "slices"

// moveDefaults checks the move limits and fills HandoffTimeout.
func (o *Options) moveDefaults() error {
	if o.MaxConcurrentMoves < 0 {
		return invalid("MaxConcurrentMoves", "must be ≥ 0 (0: unlimited)", o.MaxConcurrentMoves)
	}
	if o.MaxConcurrentMovesPerNode < 0 {
		return invalid("MaxConcurrentMovesPerNode", "must be ≥ 0 (0: unlimited)", o.MaxConcurrentMovesPerNode)
	}
	if o.HandoffTimeout == 0 {
		o.HandoffTimeout = DefaultHandoffTimeout
	}
	if o.HandoffTimeout < 0 {
		return invalid("HandoffTimeout", "must be ≥ 0 (0: DefaultHandoffTimeout)", o.HandoffTimeout)
	}
	return nil
}

// moveBudget is how many more incoming handoffs the leader may admit in
// one reconcile round: in total and per receiving node (limits of 0 mean
// unlimited). A nil budget admits everything. Used by one goroutine.
type moveBudget struct {
	total, perNode int
	inTotal        int
	inNode         map[string]int
}

// newMoveBudget returns a budget for the limits, nil when both are 0.
func newMoveBudget(total, perNode int) *moveBudget {
	if total <= 0 && perNode <= 0 {
		return nil
	}
	return &moveBudget{total: total, perNode: perNode, inNode: map[string]int{}}
}

// count records a handoff that stays incoming from the previous map.
func (b *moveBudget) count(node string) {
	if b != nil {
		b.inTotal++
		b.inNode[node]++
	}
}

// admit reports whether a new handoff to node fits, and counts it if so.
func (b *moveBudget) admit(node string) bool {
	if b == nil {
		return true
	}
	if (b.total > 0 && b.inTotal >= b.total) || (b.perNode > 0 && b.inNode[node] >= b.perNode) {
		return false
	}
	b.count(node)
	return true
}

// countContinuing counts, before a round, the handoffs of the old map that
// stay incoming in it: the node is live, runs the same process, is still
// in the partition's Target and has not reported ready for it.
func (b *moveBudget) countContinuing(oldParts []partitionState, targets [][]string, nodes partitionNodes, ready map[string]readyRecord) {
	if b == nil {
		return
	}
	for p, old := range oldParts {
		for _, in := range old.Incoming {
			if !nodes.live(in.Node) || nodes.restarted[in.Node] || ready[in.Node][p] == in.Since {
				continue
			}
			for _, n := range targets[p] {
				if n == in.Node {
					b.count(n)
					break
				}
			}
		}
	}
}

// waitingMoves counts the live Target nodes of ps that neither serve nor
// receive it: moves the limits hold back.
func waitingMoves(ps partitionState, nodes partitionNodes) int {
	n := 0
	for _, id := range ps.Target {
		if nodes.live(id) && !slices.Contains(ps.Serving, id) && !slices.ContainsFunc(ps.Incoming, func(in incoming) bool { return in.Node == id }) {
			n++
		}
	}
	return n
}

// waitingMoves counts, in this node's view of the map, the moves the move
// limits hold back.
func (ck *ClusterKit) waitingMoves() int {
	r := ck.active.Load()
	if r == nil || !ck.started.Load() { // r.follower is set during start
		return 0
	}
	n := 0
	r.follower.read(func(v *view) {
		if v.assign == nil {
			return
		}
		nodes := partitionNodes{members: v.members}
		for _, ps := range v.assign.Partitions {
			n += waitingMoves(ps, nodes)
		}
	})
	return n
}
