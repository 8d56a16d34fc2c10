package placement

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
)

// This file holds the one rule checker used by the table, property and fuzz
// tests. It recomputes everything it needs from the inputs with its own,
// deliberately plain code (no use of the planner's internals), so a bug in
// the planner's arithmetic cannot hide itself.

// ideal is what the rules say a plan of these inputs must look like.
type ideal struct {
	R        int
	zoneOf   map[string]string
	zones    []string
	lo, hi   map[string]int     // per zone: replicas of one partition
	share    map[string]float64 // per node: replica slots
	primary  map[string]float64 // per node: primaries
	distinct bool               // at least R zones
}

func weightOf(n Node) float64 {
	if n.Weight == 0 {
		return 1
	}
	return n.Weight
}

func idealOf(nodes []Node, P, RF int) ideal {
	id := ideal{
		R:       min(RF, len(nodes)),
		zoneOf:  map[string]string{},
		lo:      map[string]int{},
		hi:      map[string]int{},
		share:   map[string]float64{},
		primary: map[string]float64{},
	}
	members := map[string][]Node{}
	maxW := 0.0
	for _, n := range nodes {
		id.zoneOf[n.ID] = n.Zone
		members[n.Zone] = append(members[n.Zone], n)
		maxW = max(maxW, weightOf(n))
	}
	for z := range members {
		id.zones = append(id.zones, z)
	}
	sort.Strings(id.zones)
	id.distinct = len(id.zones) >= id.R

	// The most even spread: the lowest level L at which the zones, each
	// holding min(size, L) replicas of a partition, hold R of them.
	for L := 1; ; L++ {
		total := 0
		for _, z := range id.zones {
			total += min(len(members[z]), L)
		}
		if total >= id.R {
			for _, z := range id.zones {
				id.hi[z] = min(len(members[z]), L)
				id.lo[z] = min(len(members[z]), L-1)
			}
			break
		}
	}

	// Shares by water-filling, bisecting the level with plain arithmetic.
	fP := float64(P)
	w := func(n Node) float64 { return math.Max(weightOf(n)/maxW, 1e-12) }
	zoneFill := func(z string, level float64) float64 {
		s := 0.0
		for _, n := range members[z] {
			s += math.Min(fP, level*w(n))
		}
		return s
	}
	clamp := func(z string, v float64) float64 {
		return math.Max(fP*float64(id.lo[z]), math.Min(fP*float64(id.hi[z]), v))
	}
	solve := func(f func(float64) float64, target float64) float64 {
		lo, hi := 0.0, 1.0
		for f(hi) < target && hi < math.MaxFloat64/4 {
			hi *= 2
		}
		for range 2000 {
			mid := lo + (hi-lo)/2
			if mid <= lo || mid >= hi {
				break
			}
			if f(mid) >= target {
				hi = mid
			} else {
				lo = mid
			}
		}
		return hi
	}
	level := solve(func(l float64) float64 {
		s := 0.0
		for _, z := range id.zones {
			s += clamp(z, zoneFill(z, l))
		}
		return s
	}, fP*float64(id.R))
	for _, z := range id.zones {
		total := clamp(z, zoneFill(z, level))
		l := solve(func(l float64) float64 { return zoneFill(z, l) }, total)
		for _, n := range members[z] {
			id.share[n.ID] = math.Min(fP, l*w(n))
		}
	}
	sumW := 0.0
	for _, n := range nodes {
		sumW += w(n)
	}
	for _, n := range nodes {
		id.primary[n.ID] = fP * w(n) / sumW
	}
	return id
}

// checkPlan checks got = Plan(prev, nodes, P, RF) against the rules that
// hold after every plan: structure, spread (rule 4), RF above the node
// count (5), balance (2), failover to a surviving replica (3), and
// determinism under reordering of nodes (1), which it checks by planning
// again. It returns all violations found, joined.
func checkPlan(prev *Assignment, nodes []Node, P, RF int, got *Assignment) error {
	var errs []error
	fail := func(format string, args ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	id := idealOf(nodes, P, RF)
	if got == nil || len(got.Replicas) != P {
		return fmt.Errorf("got %d partitions, want %d", got.Partitions(), P)
	}
	replicas := map[string]int{}
	primaries := map[string]int{}
	for p, r := range got.Replicas {
		if len(r) != id.R {
			fail("partition %d: got %d replicas %v, want %d", p, len(r), r, id.R)
		}
		perZone := map[string]int{}
		seen := map[string]bool{}
		for _, n := range r {
			z, ok := id.zoneOf[n]
			if !ok {
				fail("partition %d: got unknown node %q", p, n)
				continue
			}
			if seen[n] {
				fail("partition %d: got node %q twice in %v", p, n, r)
			}
			seen[n] = true
			perZone[z]++
			replicas[n]++
		}
		for _, z := range id.zones {
			if c := perZone[z]; c < id.lo[z] || c > id.hi[z] {
				fail("partition %d: got %d replicas in zone %q (%v), want %d to %d", p, c, z, r, id.lo[z], id.hi[z])
			}
		}
		if len(r) > 0 {
			primaries[r[0]]++
		}
	}
	const eps = 1e-6
	for _, n := range nodes {
		if c, s := float64(replicas[n.ID]), id.share[n.ID]; math.Abs(c-s) > 1+eps {
			fail("node %q: got %v replica slots, want %.3f ± 1", n.ID, c, s)
		}
	}
	// Primaries: failover can make balance impossible (a partition whose
	// primary left must be led by one of its surviving replicas, however
	// many it leads already). So an unbalanced node is a violation only if
	// some choice of primaries for these replica sets is balanced.
	for _, n := range nodes {
		if c, s := float64(primaries[n.ID]), id.primary[n.ID]; math.Abs(c-s) > 1+eps && primariesCanBalance(prev, got, id) {
			fail("node %q: got %v primaries, want %.3f ± 1", n.ID, c, s)
		}
	}
	if prev != nil {
		for p := range min(P, len(prev.Replicas)) {
			before := prev.Replicas[p]
			if len(before) == 0 || len(got.Replicas[p]) == 0 {
				continue
			}
			if _, alive := id.zoneOf[before[0]]; alive {
				continue // the primary did not leave
			}
			var survivors []string
			for _, n := range got.Replicas[p] {
				if slices.Contains(before, n) {
					survivors = append(survivors, n)
				}
			}
			if len(survivors) > 0 && !slices.Contains(survivors, got.Replicas[p][0]) {
				fail("partition %d: primary %q gone, got new primary %q, want one of the surviving replicas %v",
					p, before[0], got.Replicas[p][0], survivors)
			}
		}
	}
	// Order: the primary, then the replicas that held the partition
	// before in their previous order, then the new ones by ID.
	if prev != nil {
		for p, r := range got.Replicas {
			if len(r) == 0 || p >= len(prev.Replicas) {
				continue
			}
			var old, fresh []string
			for _, n := range r[1:] {
				if slices.Contains(prev.Replicas[p], n) {
					if len(fresh) > 0 {
						fail("partition %d: got %v, want previous holders before newcomers", p, r)
					}
					old = append(old, n)
				} else {
					fresh = append(fresh, n)
				}
			}
			var want []string
			for _, n := range prev.Replicas[p] {
				if slices.Contains(old, n) && !slices.Contains(want, n) {
					want = append(want, n)
				}
			}
			if !slices.Equal(old, want) || !slices.IsSorted(fresh) {
				fail("partition %d: got %v from %v, want holders in previous order, then newcomers by ID", p, r, prev.Replicas[p])
			}
		}
	}
	for _, order := range [][]Node{reversed(nodes), rotated(nodes)} {
		again, err := Plan(prev, order, P, RF)
		if err != nil {
			fail("re-plan with nodes reordered: %v", err)
		} else if !reflect.DeepEqual(again, got) {
			fail("re-plan with nodes reordered: got a different assignment")
		}
	}
	return errors.Join(errs...)
}

func reversed(nodes []Node) []Node {
	r := slices.Clone(nodes)
	slices.Reverse(r)
	return r
}

func rotated(nodes []Node) []Node {
	if len(nodes) < 2 {
		return slices.Clone(nodes)
	}
	k := len(nodes) / 2
	return append(slices.Clone(nodes[k:]), nodes[:k]...)
}

// movement counts, from prev to next, the replica slots gained (new
// (partition, node) pairs) and the pairs lost by nodes still in nodes.
func movement(prev, next *Assignment, nodes []Node) (gained, survivorLost int) {
	alive := map[string]bool{}
	for _, n := range nodes {
		alive[n.ID] = true
	}
	for _, c := range Diff(prev, next) {
		gained += len(c.Gained)
		for _, n := range c.Lost {
			if alive[n] {
				survivorLost++
			}
		}
	}
	return gained, survivorLost
}

// lowerBound is the fewest gained slots any plan with next's per-node
// counts needs: each node must gain what it holds beyond what it held.
func lowerBound(prev, next *Assignment) int {
	before, after := map[string]int{}, map[string]int{}
	if prev != nil {
		for _, r := range prev.Replicas {
			for _, n := range slices.Compact(slices.Sorted(slices.Values(r))) {
				before[n]++
			}
		}
	}
	for _, r := range next.Replicas {
		for _, n := range r {
			after[n]++
		}
	}
	lb := 0
	for n, c := range after {
		lb += max(0, c-before[n])
	}
	return lb
}

// primariesCanBalance reports whether the partitions of got can be given
// primaries among their replicas, respecting failover (a partition whose
// primary left is led by a surviving replica, if it has one), with every
// node's primary count within ±1 of its share. It solves the circulation
// with lower bounds by max flow (Edmonds–Karp), small inputs only.
func primariesCanBalance(prev, got *Assignment, id ideal) bool {
	P := len(got.Replicas)
	var names []string
	for n := range id.primary {
		names = append(names, n)
	}
	sort.Strings(names)
	idx := map[string]int{}
	for k, n := range names {
		idx[n] = P + k
	}
	// Vertices: partitions 0..P-1, nodes P..P+N-1, s, t, ss, tt.
	N := len(names)
	s, t, ss, tt := P+N, P+N+1, P+N+2, P+N+3
	V := P + N + 4
	capacity := make([][]int, V)
	for k := range capacity {
		capacity[k] = make([]int, V)
	}
	excess := make([]int, V)
	lower := func(u, v, lo, hi int) {
		capacity[u][v] += hi - lo
		excess[v] += lo
		excess[u] -= lo
	}
	for p, r := range got.Replicas {
		lower(s, p, 1, 1)
		allowed := r
		if prev != nil && p < len(prev.Replicas) && len(prev.Replicas[p]) > 0 {
			before := prev.Replicas[p]
			if _, alive := id.zoneOf[before[0]]; !alive {
				var survivors []string
				for _, n := range r {
					if slices.Contains(before, n) {
						survivors = append(survivors, n)
					}
				}
				if len(survivors) > 0 {
					allowed = survivors
				}
			}
		}
		for _, n := range allowed {
			capacity[p][idx[n]] = 1
		}
	}
	for _, n := range names {
		sh := id.primary[n]
		lo := max(0, int(math.Ceil(sh-1-1e-6)))
		hi := int(math.Floor(sh + 1 + 1e-6))
		if lo > hi {
			return false
		}
		lower(idx[n], t, lo, hi)
	}
	capacity[t][s] = P + 1
	need := 0
	for v, e := range excess {
		if e > 0 {
			capacity[ss][v] += e
			need += e
		} else if e < 0 {
			capacity[v][tt] += -e
		}
	}
	flow := 0
	for {
		from := make([]int, V)
		for k := range from {
			from[k] = -1
		}
		from[ss] = ss
		queue := []int{ss}
		for len(queue) > 0 && from[tt] < 0 {
			u := queue[0]
			queue = queue[1:]
			for v := range V {
				if from[v] < 0 && capacity[u][v] > 0 {
					from[v] = u
					queue = append(queue, v)
				}
			}
		}
		if from[tt] < 0 {
			break
		}
		for v := tt; v != ss; v = from[v] {
			capacity[from[v]][v]--
			capacity[v][from[v]]++
		}
		flow++
	}
	return flow == need
}
