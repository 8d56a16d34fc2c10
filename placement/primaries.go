package placement

import (
	"math"
	"slices"
)

// planPrimaries chooses the primary of every partition among its replicas:
//
//  1. a surviving previous primary stays primary while its node is under its
//     primary quota;
//  2. every other partition takes the replica with the most primary quota
//     left, preferring nodes that held the partition before;
//  3. nodes over quota hand primaries down augmenting paths (partition →
//     another of its replicas → one of that node's primaries → …) to nodes
//     under quota.
//
// Throughout, a partition whose previous primary left the cluster and that
// has a replica which held it before may only have such a replica as
// primary: after a failure the new primary always has the data when any
// replica does. (A previous primary that is still alive but was moved off
// the partition by rebalancing still has the data and hands it over, so
// there any replica may lead; holders are still preferred.)
func (s *planner) planPrimaries() {
	s.prim = make([]int32, s.P)
	s.pc = make([]int32, s.n)
	held := make([]bool, s.P*s.R)   // per slot: the node held p before
	restricted := make([]bool, s.P) // primary must be a previous holder
	keepable := make([]int, s.n)    // previous primaries still replicas
	for p := range s.P {
		s.stamp++
		for _, i := range s.prevOf(p) {
			s.mark[i] = s.stamp
		}
		anyHeld, primKept := false, false
		for j, i := range s.slots(p) {
			held[p*s.R+j] = s.mark[i] == s.stamp
			anyHeld = anyHeld || held[p*s.R+j]
			primKept = primKept || i == s.prevPrim[p]
		}
		restricted[p] = anyHeld && s.prevPrimGone[p]
		s.prim[p] = -1
		if primKept {
			keepable[s.prevPrim[p]]++
		}
	}
	s.primaryQuotas(keepable)
	for p := range s.P {
		if pp := s.prevPrim[p]; pp >= 0 && s.slotOf(p, pp) >= 0 && s.pc[pp] < s.pq[pp] {
			s.prim[p] = pp
			s.pc[pp]++
		}
	}
	allowed := func(p, j int) bool { return !restricted[p] || held[p*s.R+j] }

	for p := range s.P {
		if s.prim[p] >= 0 {
			continue
		}
		best, bestJ := int32(-1), -1
		for j, i := range s.slots(p) {
			if !allowed(p, j) {
				continue
			}
			if best < 0 {
				best, bestJ = i, j
				continue
			}
			li, lb := s.pq[i]-s.pc[i], s.pq[best]-s.pc[best]
			if li > lb || (li == lb && held[p*s.R+j] && !held[p*s.R+bestJ]) {
				best, bestJ = i, j
			}
		}
		s.prim[p] = best
		s.pc[best]++
	}

	s.balancePrimaries(allowed)
}

// balancePrimaries brings every node to its primary quota where it can.
// A node over quota first trades quota (within its share's floor and
// ceiling) with a node that has quota to spare and has not used it: no
// primary moves. Otherwise it hands a primary down a shortest augmenting
// path to a node under quota. If no path exists (failover restrictions),
// it keeps the primary and takes the quota of another node with rounding to
// spare, which then sheds in turn; a node that took quota this way never
// gives it back, so this ends.
func (s *planner) balancePrimaries(allowed func(p, j int) bool) {
	primOf := make([][]int32, s.n) // per node: partitions it leads (may be stale)
	for p, i := range s.prim {
		primOf[i] = append(primOf[i], int32(p))
	}
	via := make([]int32, s.n) // node → partition through which BFS reached it
	queue := make([]int32, 0, s.n)
	locked := make([]bool, s.n)
	donor := func(o int32, free bool) int32 {
		for u := range int32(s.n) {
			if u != o && !locked[u] && s.pq[u] > s.pf[u] && (!free || s.pc[u] < s.pq[u]) {
				return u
			}
		}
		return -1
	}
	for pass := 0; pass < 2; pass++ {
		if pass == 1 {
			// Some node is stuck over its quota, which only failover
			// restrictions cause. Widen every band from the floor and
			// ceiling of the share to the whole of share ± 1, which the
			// balance rule allows, and try again.
			stuck := false
			for i := range s.pc {
				stuck = stuck || s.pc[i] > s.pq[i]
			}
			if !stuck {
				break
			}
			for i, sh := range s.pshare {
				s.pf[i] = min(s.pf[i], int32(max(0, math.Ceil(sh-1-1e-9))))
				s.pcl[i] = max(s.pcl[i], min(int32(math.Floor(sh+1+1e-9)), s.cnt[i]))
			}
			clear(locked)
		}
		for changed := true; changed; {
			changed = false
			for o := range int32(s.n) {
				for s.pc[o] > s.pq[o] {
					if s.pq[o] < s.pcl[o] {
						if u := donor(o, true); u >= 0 {
							s.pq[u]--
							s.pq[o]++
							continue
						}
					}
					if found := s.primaryPath(o, primOf, via, queue, allowed, donor); found >= 0 {
						if s.pc[found] >= s.pq[found] {
							// found is under its share's ceiling: raise its
							// quota, from a donor with quota to spare if there
							// is one, else from any donor, which then sheds in
							// turn; found never gives quota back.
							u := donor(found, true)
							if u < 0 {
								u = donor(found, false)
								locked[found] = true
								changed = true
							}
							s.pq[u]--
							s.pq[found]++
						}
						s.pc[found]++
						s.pc[o]--
						for y := found; y != o; {
							p := via[y]
							from := s.prim[p]
							s.prim[p] = y
							primOf[y] = append(primOf[y], p)
							y = from
						}
						continue
					}
					if s.pq[o] < s.pcl[o] {
						if u := donor(o, false); u >= 0 {
							s.pq[u]--
							s.pq[o]++
							locked[o] = true
							changed = true
							continue
						}
					}
					break // o cannot shed more
				}
			}
		}
	}
}

// primaryPath searches breadth-first from node o, over partitions it leads
// and the replicas allowed to lead them, for a node under its primary quota,
// or under its share's ceiling with a donor of quota to spare, or failing
// both, the nearest node under its share's ceiling with any donor. It
// returns that node, with via set so that following via back to o gives
// the path, or -1.
func (s *planner) primaryPath(o int32, primOf [][]int32, via, queue []int32, allowed func(p, j int) bool, donor func(int32, bool) int32) int32 {
	s.stamp++
	s.mark[o] = s.stamp
	queue = append(queue[:0], o)
	second := int32(-1)
	for qi := 0; qi < len(queue); qi++ {
		x := queue[qi]
		for _, p := range primOf[x] {
			if s.prim[p] != x {
				continue
			}
			for j, y := range s.slots(int(p)) {
				if s.mark[y] == s.stamp || !allowed(int(p), j) {
					continue
				}
				s.mark[y] = s.stamp
				via[y] = p
				if s.pc[y] < s.pq[y] || (s.pc[y] < s.pcl[y] && donor(y, true) >= 0) {
					return y
				}
				if second < 0 && s.pc[y] < s.pcl[y] && donor(y, false) >= 0 {
					second = y
				}
				queue = append(queue, y)
			}
		}
	}
	if second >= 0 {
		// via along second's path is intact: each node is visited once.
		return second
	}
	return -1
}

// primaryQuotas sets each node's primary quota: its weighted share of P,
// rounded down or up so that the quotas sum to P, the ones rounded up chosen
// first among nodes that can keep that many previous primaries, and never
// above the node's replica count.
func (s *planner) primaryQuotas(keepable []int) {
	if s.R == 1 {
		s.pq = slices.Clone(s.cnt)
		s.pf, s.pcl = slices.Clone(s.cnt), slices.Clone(s.cnt)
		return
	}
	total := 0.0
	for _, w := range s.w {
		total += w
	}
	share := make([]float64, s.n)
	lim := make([]int, s.n)
	for i, w := range s.w {
		share[i] = float64(s.P) * w / total
		lim[i] = int(s.cnt[i])
	}
	s.pshare = share
	s.pq = make([]int32, s.n)
	for i, v := range roundShares(share, keepable, lim, s.P) {
		s.pq[i] = int32(v)
	}
	s.pf, s.pcl = bounds(share, s.pq, s.P)
	for i := range s.pcl {
		s.pcl[i] = max(s.pq[i], min(s.pcl[i], s.cnt[i]))
	}
}
