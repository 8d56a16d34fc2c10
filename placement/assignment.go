package placement

import (
	"slices"
)

// Node is a cluster member as the planner sees it.
//
// ID must be non-empty and unique among the nodes given to Plan. Zone is a
// failure domain (rack, availability zone); nodes with the same Zone string
// are in the same zone, and the empty string is a zone like any other, so a
// cluster that sets no zones is one zone. Weight is the node's relative
// capacity: a node of weight 2 gets twice the share of a node of weight 1;
// Weight 0 means 1; negative, NaN and infinite weights are invalid. Only
// ratios matter, and a weight below 10⁻¹² of the largest counts as 10⁻¹² of
// it (such a node's share is zero for any realistic partition count).
//
// A Node is a plain value; its zero value is not valid input to Plan (ID is
// empty).
type Node struct {
	ID     string
	Zone   string
	Weight float64
}

// Assignment maps partitions to nodes. Replicas[p] lists the IDs of the nodes
// that hold partition p, in order; Replicas[p][0] is the primary.
//
// An Assignment returned by Plan must be treated as immutable: it may be read
// from any number of goroutines at once, but whoever wants to change it must
// Clone it first. The methods only read it. The zero value is an assignment
// of zero partitions.
type Assignment struct {
	Replicas [][]string
}

// Clone returns a deep copy of a. Clone of a nil *Assignment is nil.
func (a *Assignment) Clone() *Assignment {
	if a == nil {
		return nil
	}
	c := &Assignment{Replicas: make([][]string, len(a.Replicas))}
	for p, r := range a.Replicas {
		if r != nil {
			c.Replicas[p] = slices.Clone(r)
		}
	}
	return c
}

// Partitions returns the number of partitions of a (0 for a nil a).
func (a *Assignment) Partitions() int {
	if a == nil {
		return 0
	}
	return len(a.Replicas)
}

// Primary returns the primary of partition p, or "" if a is nil, p is out of
// range or the partition has no replicas.
func (a *Assignment) Primary(p int) string {
	if a == nil || p < 0 || p >= len(a.Replicas) || len(a.Replicas[p]) == 0 {
		return ""
	}
	return a.Replicas[p][0]
}

// Holds reports whether node id is one of the replicas (primary included) of
// partition p. It is false if a is nil or p is out of range.
func (a *Assignment) Holds(p int, id string) bool {
	if a == nil || p < 0 || p >= len(a.Replicas) {
		return false
	}
	return slices.Contains(a.Replicas[p], id)
}

// Change is what happened to one partition between two assignments. It is
// a plain value; Diff returns new slices that the caller owns.
//
// Gained lists the nodes that hold the partition in the new assignment but
// not in the old one, Lost those that held it in the old one but not in the
// new one, both sorted by ID. PrimaryBefore and PrimaryAfter are the primaries
// of the old and the new assignment ("" if there was none).
type Change struct {
	Partition     int
	Gained        []string
	Lost          []string
	PrimaryBefore string
	PrimaryAfter  string
}

// Diff returns the changes from prev to next, one per partition whose set of
// replicas or whose primary differs, in increasing partition order. A
// partition whose replicas were only reordered behind an unchanged primary is
// not a change.
//
// A nil prev (or a partition missing from prev) counts as empty, so every
// replica of next is gained; likewise a nil next loses everything. Duplicate
// IDs within a partition count once. Diff only reads its arguments and is safe
// for concurrent use.
func Diff(prev, next *Assignment) []Change {
	n := max(prev.Partitions(), next.Partitions())
	var changes []Change
	for p := range n {
		var before, after []string
		if p < prev.Partitions() {
			before = prev.Replicas[p]
		}
		if p < next.Partitions() {
			after = next.Replicas[p]
		}
		gained := missingFrom(after, before)
		lost := missingFrom(before, after)
		pb, pa := prev.Primary(p), next.Primary(p)
		if len(gained) == 0 && len(lost) == 0 && pb == pa {
			continue
		}
		changes = append(changes, Change{
			Partition:     p,
			Gained:        gained,
			Lost:          lost,
			PrimaryBefore: pb,
			PrimaryAfter:  pa,
		})
	}
	return changes
}

// missingFrom returns the distinct elements of a that are not in b, sorted.
func missingFrom(a, b []string) []string {
	var out []string
	if len(a)+len(b) > 64 { // every node on every partition of a large cluster
		in := make(map[string]bool, len(b))
		for _, id := range b {
			in[id] = true
		}
		for _, id := range a {
			if !in[id] {
				in[id] = true
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, id := range a {
		if !slices.Contains(b, id) && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
