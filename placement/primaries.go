package placement

import "math"

// planPrimaries chooses the primary of every partition among its replicas.
// Each node has a band of acceptable primary counts: the floor and ceiling
// of its weighted share of P (never more than the replicas it holds).
//
//  1. A surviving previous primary stays primary while its node is under
//     the ceiling of its band, so nothing moves that balance allows to stay.
//  2. Every other partition takes the replica furthest below its band,
//     preferring nodes that held the partition before.
//  3. A node above its band hands primaries down augmenting paths
//     (partition → another of its replicas → one of that node's primaries
//     → …) to a node below its ceiling; a node below its band takes them up
//     such paths from a node above its floor. Shortest paths first, so a
//     join moves about the newcomer's share of primaries to it directly.
//
// Throughout, a partition whose previous primary left the cluster and that
// has a replica which held it before may only have such a replica as
// primary: after a failure the new primary always has the data when any
// replica does. (A previous primary that is still alive but was moved off
// the partition by rebalancing still has the data and hands it over, so
// there any replica may lead; holders are still preferred.) Those
// restrictions can make the bands unreachable; then the bands widen to the
// whole of share ± 1 that the balance rule allows, and if even that is out
// of reach, failover wins over balance.
func (s *planner) planPrimaries() {
	s.prim = make([]int32, s.P)
	s.pc = make([]int32, s.n)
	s.held = make([]bool, s.P*s.R)   // per slot: the node held p before
	s.restricted = make([]bool, s.P) // primary must be a previous holder
	for p := range s.P {
		s.stamp++
		for _, i := range s.prevOf(p) {
			s.mark[i] = s.stamp
		}
		anyHeld := false
		for j, i := range s.slots(p) {
			s.held[p*s.R+j] = s.mark[i] == s.stamp
			anyHeld = anyHeld || s.held[p*s.R+j]
		}
		s.restricted[p] = anyHeld && s.prevPrimGone[p]
		s.prim[p] = -1
	}
	s.primaryBands()

	for p := range s.P {
		if pp := s.prevPrim[p]; pp >= 0 && s.slotOf(p, pp) >= 0 && s.pc[pp] < s.pcl[pp] {
			s.prim[p] = pp
			s.pc[pp]++
		}
	}
	for p := range s.P {
		if s.prim[p] >= 0 {
			continue
		}
		best, bestJ := int32(-1), -1
		for j, i := range s.slots(p) {
			if !s.mayLead(p, j) {
				continue
			}
			if best < 0 || s.leadsBefore(p, j, bestJ) {
				best, bestJ = i, j
			}
		}
		s.prim[p] = best
		s.pc[best]++
	}

	s.primOf = make([][]int32, s.n)
	for p, i := range s.prim {
		s.primOf[i] = append(s.primOf[i], int32(p))
	}
	s.via = make([]int32, s.n)
	s.from = make([]int32, s.n)
	s.balancePrimaries()
	if s.primariesOutOfBand() {
		for i, sh := range s.pshare {
			s.pf[i] = min(s.pf[i], int32(max(0, math.Ceil(sh-1-1e-9))))
			s.pcl[i] = max(s.pcl[i], min(int32(math.Floor(sh+1+1e-9)), s.cnt[i]))
		}
		s.balancePrimaries()
	}
}

// mayLead reports whether the node in slot j of partition p may be its
// primary (see the failover restriction on planPrimaries).
func (s *planner) mayLead(p, j int) bool { return !s.restricted[p] || s.held[p*s.R+j] }

// leadsBefore reports whether the node in slot j should rather lead
// partition p than the node in slot k: further below its floor, then
// further below its ceiling, then it held p before, then earlier slot.
func (s *planner) leadsBefore(p, j, k int) bool {
	a, b := s.rep[p*s.R+j], s.rep[p*s.R+k]
	if da, db := s.pf[a]-s.pc[a], s.pf[b]-s.pc[b]; da != db {
		return da > db
	}
	if da, db := s.pcl[a]-s.pc[a], s.pcl[b]-s.pc[b]; da != db {
		return da > db
	}
	return s.held[p*s.R+j] && !s.held[p*s.R+k]
}

func (s *planner) primariesOutOfBand() bool {
	for i, c := range s.pc {
		if c < s.pf[i] || c > s.pcl[i] {
			return true
		}
	}
	return false
}

// balancePrimaries moves primaries along shortest augmenting paths until
// every node is within its band or no path helps.
func (s *planner) balancePrimaries() {
	for o := range int32(s.n) {
		for s.pc[o] > s.pcl[o] {
			y := s.primaryPathDown(o)
			if y < 0 {
				break
			}
			s.shiftDown(o, y)
		}
	}
	for u := range int32(s.n) {
		for s.pc[u] < s.pf[u] {
			x := s.primaryPathUp(u)
			if x < 0 {
				break
			}
			s.shiftUp(u, x)
		}
	}
}

// primaryPathDown searches breadth-first from node o, over the partitions
// it leads and the replicas that may lead them, for a node below its
// ceiling. It returns that node, with via set so that following via back
// to o gives the path, or -1.
func (s *planner) primaryPathDown(o int32) int32 {
	s.stamp++
	s.mark[o] = s.stamp
	queue := append(s.queue[:0], o)
	defer func() { s.queue = queue }()
	for qi := 0; qi < len(queue); qi++ {
		x := queue[qi]
		for _, p := range s.primOf[x] {
			if s.prim[p] != x {
				continue // stale
			}
			for j, y := range s.slots(int(p)) {
				if s.mark[y] == s.stamp || !s.mayLead(int(p), j) {
					continue
				}
				s.mark[y] = s.stamp
				s.via[y] = p
				if s.pc[y] < s.pcl[y] {
					return y
				}
				queue = append(queue, y)
			}
		}
	}
	return -1
}

// shiftDown moves one primary from o to y along the path primaryPathDown
// found: each node on it takes the partition via which it was reached.
func (s *planner) shiftDown(o, y int32) {
	s.pc[y]++
	s.pc[o]--
	for y != o {
		p := s.via[y]
		from := s.prim[p]
		s.prim[p] = y
		s.primOf[y] = append(s.primOf[y], p)
		y = from
	}
}

// primaryPathUp searches breadth-first from node u, over the partitions it
// may lead but does not and the nodes leading them, for a node above its
// floor. It returns that node, with via set so that following via from it
// back to u gives the path (each node gives up the partition via which it
// was reached), or -1.
func (s *planner) primaryPathUp(u int32) int32 {
	s.stamp++
	s.mark[u] = s.stamp
	queue := append(s.queue[:0], u)
	defer func() { s.queue = queue }()
	for qi := 0; qi < len(queue); qi++ {
		y := queue[qi]
		for _, p := range s.currentParts(y) {
			x := s.prim[p]
			if x == y || s.mark[x] == s.stamp || !s.mayLead(int(p), s.slotOf(int(p), y)) {
				continue
			}
			s.mark[x] = s.stamp
			s.via[x] = p
			s.from[x] = y
			if s.pc[x] > s.pf[x] {
				return x
			}
			queue = append(queue, x)
		}
	}
	return -1
}

// shiftUp moves one primary from x to u along the path primaryPathUp found.
func (s *planner) shiftUp(u, x int32) {
	s.pc[u]++
	s.pc[x]--
	for x != u {
		p, to := s.via[x], s.from[x]
		s.prim[p] = to
		s.primOf[to] = append(s.primOf[to], p)
		x = to
	}
}

// primaryBands sets each node's band of primary counts: the floor and the
// ceiling of its weighted share of P, the ceiling no more than the replicas
// the node holds. With one replica per partition a node leads exactly what
// it holds.
func (s *planner) primaryBands() {
	s.pf = make([]int32, s.n)
	s.pcl = make([]int32, s.n)
	s.pshare = make([]float64, s.n)
	if s.R == 1 {
		copy(s.pf, s.cnt)
		copy(s.pcl, s.cnt)
		for i, c := range s.cnt {
			s.pshare[i] = float64(c)
		}
		return
	}
	total := 0.0
	for _, w := range s.w {
		total += w
	}
	for i, w := range s.w {
		sh := float64(s.P) * w / total
		s.pshare[i] = sh
		s.pf[i] = min(int32(math.Floor(sh)), s.cnt[i])
		s.pcl[i] = min(int32(math.Ceil(sh)), s.cnt[i])
	}
}
