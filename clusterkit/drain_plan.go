package clusterkit

import (
	"slices"

	"github.com/clusterkit-go/clusterkit/placement"
)

// How the planner honours the operator's orders (plannedNode.Op), all
// pure and called from planTargets:
//
//   - a draining node is left out of placement.Plan's nodes, so its Target
//     slots go to the others and nextPartition moves its partitions off
//     through the normal handoff (it serves until the new holders are
//     ready). When no other node could take them, it stays in: the drain
//     waits;
//   - a cordoned node is planned like the others, then keepCordoned gives
//     it back the slots the plan took off it and hands the slots the plan
//     gave it to the least loaded other node;
//   - when a drain is lifted, the partitions the node still serves are
//     planned from their serving set (priorTargets), so a move still on
//     its way is called off rather than made.

// sameDraining reports whether a and b name the same draining nodes.
func sameDraining(a, b []plannedNode) bool {
	return slices.Equal(opNodes(a, NodeDraining), opNodes(b, NodeDraining))
}

// opNodes returns the IDs of the planned nodes under op, in list order.
func opNodes(planned []plannedNode, op NodeOperation) []string {
	var out []string
	for _, pn := range planned {
		if pn.Op == op {
			out = append(out, pn.ID)
		}
	}
	return out
}

// placementNodes returns the nodes placement.Plan plans for: the planned
// ones but the draining (unless every node is draining).
func placementNodes(planned []plannedNode) []placement.Node {
	nodes := make([]placement.Node, 0, len(planned))
	for _, n := range planned {
		if n.Op != NodeDraining {
			nodes = append(nodes, placement.Node{ID: n.ID, Zone: n.Zone, Weight: n.Weight})
		}
	}
	if len(nodes) == 0 {
		for _, n := range planned {
			nodes = append(nodes, placement.Node{ID: n.ID, Zone: n.Zone, Weight: n.Weight})
		}
	}
	return nodes
}

// priorTargets returns the Targets the planner starts from: the old ones,
// except that a partition still served by a node whose drain was lifted
// (draining in before, not in planned) but no longer in its Target starts
// from its serving set.
func priorTargets(oldParts []partitionState, before, planned []plannedNode) [][]string {
	var undrained []string
	for _, id := range opNodes(before, NodeDraining) {
		if !slices.Contains(opNodes(planned, NodeDraining), id) {
			undrained = append(undrained, id)
		}
	}
	out := make([][]string, len(oldParts))
	for p, ps := range oldParts {
		out[p] = ps.Target
		for _, id := range undrained {
			if slices.Contains(ps.Serving, id) && !slices.Contains(ps.Target, id) {
				out[p] = ps.Serving
				break
			}
		}
	}
	return out
}

// keepCordoned edits targets (in place) so that no cordoned node gains or
// loses a slot relative to prior (nil: a first plan, where a cordoned
// node gets nothing). A slot the plan took off a cordoned node goes back
// to it in place of a node that gained it; a slot it would gain goes to
// the least loaded node neither cordoned, draining nor away that the
// partition lacks, preferring a zone the partition lacks; with no such
// node the slot is dropped (the partition is under-replicated, as health
// reports).
func keepCordoned(targets, prior [][]string, planned []plannedNode) {
	cordoned := opNodes(planned, NodeCordoned)
	if len(cordoned) == 0 {
		return
	}
	load := map[string]int{}
	for _, t := range targets {
		for _, n := range t {
			load[n]++
		}
	}
	for p, t := range targets {
		var old []string
		if prior != nil {
			old = prior[p]
		}
		t = slices.Clone(t)
		for _, c := range cordoned {
			had, has := slices.Contains(old, c), slices.Contains(t, c)
			switch {
			case had && !has:
				if i := slices.IndexFunc(t, func(n string) bool { return !slices.Contains(old, n) }); i >= 0 {
					load[t[i]]--
					t[i] = c
				} else {
					t = append(t, c)
				}
				load[c]++
			case !had && has:
				i := slices.Index(t, c)
				load[c]--
				if s := substitute(t, planned, load); s != "" {
					t[i] = s
					load[s]++
				} else {
					t = slices.Delete(t, i, i+1)
				}
			}
		}
		targets[p] = t
	}
}

// substitute returns the node to take a slot of partition target t: the
// least loaded eligible node not in t, preferring one whose zone t lacks;
// "" if none.
func substitute(t []string, planned []plannedNode, load map[string]int) string {
	zones := map[string]bool{}
	for _, pn := range planned {
		if slices.Contains(t, pn.ID) {
			zones[pn.Zone] = true
		}
	}
	best, bestNewZone := "", false
	for _, pn := range planned {
		if pn.Op != "" || pn.away() || slices.Contains(t, pn.ID) {
			continue
		}
		newZone := !zones[pn.Zone]
		if best == "" || (newZone && !bestNewZone) || (newZone == bestNewZone && load[pn.ID] < load[best]) {
			best, bestNewZone = pn.ID, newZone
		}
	}
	return best
}
