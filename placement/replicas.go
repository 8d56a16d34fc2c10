package placement

import (
	"cmp"
	"slices"
)

// planReplicas chooses the replica set of every partition. In order:
//
//  1. keep: every previous (partition, node) pair whose node is still there
//     and that the zone rule and the replica count allow;
//  2. fill the slots left open (by departed nodes, a larger replication
//     factor, the zone rule) from nodes under quota, largest deficit first;
//  3. transfer: a node over quota hands a partition directly to a node under
//     quota that may hold it, which is one move per slot, the minimum;
//  4. shed what no direct transfer could take and fill the slots so opened,
//     using augmenting paths (shifting a replica placed in this plan, or if
//     need be a kept one, to another partition) where the greedy choice is
//     stuck on the distinct-node or zone rule.
func (s *planner) planReplicas() {
	s.rep = make([]int32, s.P*s.R)
	for k := range s.rep {
		s.rep[k] = -1
	}
	s.isNew = make([]bool, s.P*s.R)
	s.parts = make([][]int32, s.n)
	if s.R == s.n {
		s.placeAll()
		return
	}
	s.keep()
	s.startQueues()
	for o := range int32(s.n) {
		for s.cnt[o] > s.q[o] && s.trade(o) {
		}
	}
	s.fillOpen(false)
	s.transfer()
	s.shed()
	s.fillOpen(true)
}

func (s *planner) slots(p int) []int32 { return s.rep[p*s.R : (p+1)*s.R] }

// slotOf returns the slot index of node i in partition p, or -1.
func (s *planner) slotOf(p int, i int32) int {
	for j, x := range s.slots(p) {
		if x == i {
			return j
		}
	}
	return -1
}

func (s *planner) place(p, j int, i int32, fresh bool) {
	s.rep[p*s.R+j] = i
	s.isNew[p*s.R+j] = fresh
	s.parts[i] = append(s.parts[i], int32(p))
	s.bump(i, 1)
}

func (s *planner) unplace(p, j int) {
	i := s.rep[p*s.R+j]
	s.rep[p*s.R+j] = -1
	s.bump(i, -1)
}

// placeAll handles R = n: every node holds every partition.
func (s *planner) placeAll() {
	for p := range s.P {
		s.stamp++
		j := 0
		for _, i := range s.prevOf(p) {
			s.mark[i] = s.stamp
			s.place(p, j, i, false)
			j++
		}
		for i := range int32(s.n) {
			if s.mark[i] != s.stamp {
				s.place(p, j, i, true)
				j++
			}
		}
	}
}

// keep places every surviving previous pair that the per-partition rules
// (at most R replicas, the zone rule) allow, in previous order. Where a
// partition breaks a rule (the replication factor shrank, a zone appeared
// or a node changed zones), it drops the replica whose node holds the most
// beyond its quota, so that drops land where the surplus is; then the one
// with the smallest quota (a node that must hold nearly every partition has
// nowhere else to go); then it keeps the previous primary, then earlier
// positions.
func (s *planner) keep() {
	surplus := make([]int32, s.n)
	for _, i := range s.prevIdx {
		surplus[i]++
	}
	for i := range surplus {
		surplus[i] -= s.q[i]
	}
	var cand []int32
	zc := make([]int32, len(s.zones))
	for p := range s.P {
		cand = append(cand[:0], s.prevOf(p)...)
		for {
			clear(zc)
			for _, i := range cand {
				zc[s.zone[i]]++
			}
			need := 0
			overHi := false
			for z, c := range zc {
				need += int(max(c, s.lo[z]))
				overHi = overHi || c > s.hi[z]
			}
			var droppable func(i int32) bool
			switch {
			case overHi:
				droppable = func(i int32) bool { return zc[s.zone[i]] > s.hi[s.zone[i]] }
			case need > s.R:
				droppable = func(i int32) bool { return zc[s.zone[i]] > s.lo[s.zone[i]] }
			case len(cand) > s.R:
				droppable = func(int32) bool { return true }
			}
			if droppable == nil {
				break
			}
			drop := -1
			for k, i := range cand {
				if !droppable(i) {
					continue
				}
				if drop < 0 {
					drop = k
					continue
				}
				d := cand[drop]
				ri, rd := s.q[i], s.q[d] // a node with a larger quota has fewer other partitions to go to
				switch {
				case surplus[i] != surplus[d]:
					if surplus[i] > surplus[d] {
						drop = k
					}
				case ri != rd:
					if ri < rd {
						drop = k
					}
				case d == s.prevPrim[p], i != s.prevPrim[p]:
					drop = k // later positions win ties
				}
			}
			surplus[cand[drop]]--
			cand = slices.Delete(cand, drop, drop+1)
		}
		for j, i := range cand {
			s.place(p, j, i, false)
		}
	}
}

// canJoin reports whether node i may be added to partition p when node
// leaving (or -1) leaves it at the same time: i is not already there and
// its zone stays within the zone rule.
func (s *planner) canJoin(p int, i, leaving int32) bool {
	for _, x := range s.slots(p) {
		if x == i && x != leaving {
			return false
		}
	}
	return s.zoneFits(p, s.zone[i], leaving)
}

// zoneFits reports whether a node of zone z may be added to partition p
// while node leaving (or -1) leaves: the zone stays at or under hi, and the
// zones under lo can still be brought up to it with the remaining slots.
func (s *planner) zoneFits(p int, z, leaving int32) bool {
	var cz int32
	for _, x := range s.slots(p) {
		if x >= 0 && x != leaving && s.zone[x] == z {
			cz++
		}
	}
	if cz >= s.hi[z] {
		return false
	}
	if !s.hasLo {
		return true
	}
	for _, x := range s.slots(p) {
		if x >= 0 && x != leaving {
			s.zcnt[s.zone[x]]++
		}
	}
	s.zcnt[z]++
	need := 0
	for k := range s.zcnt {
		need += int(max(s.zcnt[k], s.lo[k]))
		s.zcnt[k] = 0
	}
	return need <= s.R
}

// entry is a queued node or zone with its deficit when queued and a
// tie-break. An entry is stale once the deficit has changed.
type entry struct {
	tie uint64
	id  int32
	def int32
}

func (a entry) before(b entry) bool {
	if a.def != b.def {
		return a.def > b.def
	}
	if a.tie != b.tie {
		return a.tie < b.tie
	}
	return a.id < b.id
}

// entryHeap is a binary heap, largest deficit on top.
type entryHeap []entry

func (h *entryHeap) push(e entry) {
	*h = append(*h, e)
	a := *h
	k := len(a) - 1
	for k > 0 {
		parent := (k - 1) / 2
		if !a[k].before(a[parent]) {
			break
		}
		a[k], a[parent] = a[parent], a[k]
		k = parent
	}
}

func (h *entryHeap) pop() entry {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	k := 0
	for {
		l := 2*k + 1
		if l >= len(a) {
			break
		}
		c := l
		if r := l + 1; r < len(a) && a[r].before(a[l]) {
			c = r
		}
		if !a[c].before(a[k]) {
			break
		}
		a[k], a[c] = a[c], a[k]
		k = c
	}
	*h = a
	return top
}

func (s *planner) deficit(i int32) int32 { return max(0, s.q[i]-s.cnt[i]) }

func (s *planner) nodeEntry(i int32) entry {
	return entry{id: i, def: s.deficit(i), tie: mix(s.h[i] ^ uint64(s.cnt[i])*0x9e3779b97f4a7c15)}
}

func (s *planner) zoneEntry(z int32) entry {
	return entry{id: z, def: s.zdef[z], tie: mix(s.zh[z] ^ uint64(s.zdef[z])*0x9e3779b97f4a7c15)}
}

// startQueues builds the deficit queues; from now on bump keeps them
// current.
func (s *planner) startQueues() {
	s.heapsOn = true
	s.zdef = make([]int32, len(s.zones))
	s.nq = make([]entryHeap, len(s.zones))
	for z, m := range s.zones {
		for _, i := range m {
			if d := s.deficit(i); d > 0 {
				s.zdef[z] += d
				s.nq[z].push(s.nodeEntry(i))
			}
		}
		if s.zdef[z] > 0 {
			s.zq.push(s.zoneEntry(int32(z)))
		}
	}
}

// bump changes node i's replica count by d and queues fresh entries for it
// and its zone when their deficits change.
func (s *planner) bump(i, d int32) {
	old := s.deficit(i)
	s.cnt[i] += d
	now := s.deficit(i)
	if !s.heapsOn || now == old {
		return
	}
	z := s.zone[i]
	s.zdef[z] += now - old
	if s.zdef[z] > 0 {
		s.zq.push(s.zoneEntry(z))
	}
	if now > 0 {
		s.nq[z].push(s.nodeEntry(i))
	}
}

// pick returns the node under quota that should take a slot of partition p
// (while node leaving, or -1, leaves it): from the zone with the largest
// deficit that may take it, the node with the largest deficit that is not
// already there. It returns -1 if no node under quota may take it. The
// queues are left as they were.
func (s *planner) pick(p int, leaving int32) int32 {
	chosen := int32(-1)
	s.skipZ = s.skipZ[:0]
	for len(s.zq) > 0 && chosen < 0 {
		e := s.zq.pop()
		if e.def != s.zdef[e.id] {
			continue // stale
		}
		s.skipZ = append(s.skipZ, e)
		if s.zoneFits(p, e.id, leaving) {
			chosen = s.pickInZone(p, e.id, leaving)
		}
	}
	for _, e := range s.skipZ {
		s.zq.push(e)
	}
	return chosen
}

func (s *planner) pickInZone(p int, z, leaving int32) int32 {
	chosen := int32(-1)
	h := &s.nq[z]
	s.skipN = s.skipN[:0]
	for len(*h) > 0 && chosen < 0 {
		e := h.pop()
		if e.def != s.deficit(e.id) || e.def == 0 {
			continue // stale
		}
		s.skipN = append(s.skipN, e)
		if j := s.slotOf(p, e.id); j < 0 || e.id == leaving {
			chosen = e.id
		}
	}
	for _, e := range s.skipN {
		h.push(e)
	}
	return chosen
}

// fillOpen fills the open slots of every partition, in partition order,
// with nodes under quota. If augment is false a slot that no node under
// quota may take directly stays open; otherwise it is filled through an
// augmenting path, or as a last resort by the least loaded node that may
// take it.
func (s *planner) fillOpen(augment bool) {
	for p := range s.P {
		for j := range s.R {
			if s.rep[p*s.R+j] >= 0 {
				continue
			}
			i := s.pick(p, -1)
			if i < 0 {
				if !augment {
					break
				}
				if i = s.tradeInto(p); i >= 0 {
					s.place(p, j, i, true)
					continue
				}
				if s.augment(p, true) || s.augment(p, false) {
					continue // slot j is now filled
				}
				i = s.fallback(p)
				s.fallbacks++
			}
			s.place(p, j, i, true)
		}
	}
}

// currentParts returns the partitions node i holds now, each once, in
// ascending order, and drops stale entries from its list.
func (s *planner) currentParts(i int32) []int32 {
	s.pstmp++
	ps := s.parts[i][:0]
	for _, p := range s.parts[i] {
		if s.seen[p] != s.pstmp && s.slotOf(int(p), i) >= 0 {
			s.seen[p] = s.pstmp
			ps = append(ps, p)
		}
	}
	s.parts[i] = ps
	slices.Sort(ps)
	return ps
}

// shedOrder returns the partitions of node i in the order it should give
// them up: partitions it is not the previous primary of first, then later
// (newer) positions first, then a deterministic pseudo-random order so
// that nodes shedding at once spread over different partitions.
func (s *planner) shedOrder(i int32) []int32 {
	ps := slices.Clone(s.currentParts(i))
	key := func(p int32) (bool, int, uint64) {
		return s.prevPrim[p] == i, s.slotOf(int(p), i), mix(s.h[i] ^ uint64(p)*0x9e3779b97f4a7c15)
	}
	slices.SortFunc(ps, func(a, b int32) int {
		pa, ja, ta := key(a)
		pb, jb, tb := key(b)
		if pa != pb {
			if pb {
				return -1
			}
			return 1
		}
		if ja != jb {
			return cmp.Compare(jb, ja)
		}
		return cmp.Compare(ta, tb)
	})
	return ps
}

// transfer moves surplus replicas of nodes over quota directly to nodes
// under quota, one move per slot.
func (s *planner) transfer() {
	for o := range int32(s.n) {
		if s.cnt[o] <= s.q[o] {
			continue
		}
		for _, p := range s.shedOrder(o) {
			if s.cnt[o] <= s.q[o] {
				break
			}
			if u := s.pick(int(p), o); u >= 0 {
				j := s.slotOf(int(p), o)
				s.unplace(int(p), j)
				s.place(int(p), j, u, true)
			}
		}
		for s.cnt[o] > s.q[o] && (s.transferChain(o) || s.transferByPeer(o)) {
		}
	}
}

// transferChain handles a node o over quota none of whose partitions a node
// under quota may take directly, typically because an earlier transfer put
// that node there already. It searches breadth-first for a chain: o leaves
// partition p1 and a previous holder h1 of p1, removed earlier in this plan,
// returns to it (its old pair, no move); h1 then leaves p2 for h2, and so
// on, until some hk leaves a partition that a node under quota may take
// (or hk is itself under quota). The chain costs one move, like a direct
// transfer. It reports whether it found one.
func (s *planner) transferChain(o int32) bool {
	type link struct{ from, p int32 } // node reached from node from via partition p
	s.stamp++
	s.mark[o] = s.stamp
	parent := map[int32]link{}
	used := map[int32]bool{} // partitions on the search tree
	apply := func(x, p, in int32) {
		// in joins p in place of x, then walk back to o.
		for {
			j := s.slotOf(int(p), x)
			s.unplace(int(p), j)
			s.place(int(p), j, in, !s.heldBefore(int(p), in))
			if x == o {
				return
			}
			l := parent[x]
			in, x, p = x, l.from, l.p
		}
	}
	queue := []int32{o}
	for qi := 0; qi < len(queue); qi++ {
		x := queue[qi]
		for _, p := range s.shedOrder(x) {
			if used[p] {
				continue
			}
			if u := s.pick(int(p), x); u >= 0 {
				apply(x, p, u)
				return true
			}
			for _, h := range s.prevOf(int(p)) {
				if s.mark[h] == s.stamp || s.slotOf(int(p), h) >= 0 || !s.canJoin(int(p), h, x) {
					continue
				}
				if s.cnt[h] < s.q[h] {
					apply(x, p, h)
					return true
				}
				s.mark[h] = s.stamp
				used[p] = true
				parent[h] = link{x, p}
				queue = append(queue, h)
			}
		}
	}
	return false
}

// heldBefore reports whether node i held partition p in prev.
func (s *planner) heldBefore(p int, i int32) bool {
	return slices.Contains(s.prevOf(p), i)
}

// transferByPeer handles a node o over quota that can hand none of its
// partitions directly to a node under quota: it looks for a peer y that
// can, takes over y's rounding (so o keeps one more replica and y must
// give one up) and makes y's transfer. It reports whether it found one.
// That is still one move for one unit of surplus.
func (s *planner) transferByPeer(o int32) bool {
	for y := range int32(s.n) {
		if s.cnt[y] < s.q[y] || !s.mayShift(y, o) {
			continue
		}
		for _, p := range s.shedOrder(y) {
			if u := s.pick(int(p), y); u >= 0 {
				s.shiftQuota(y, o)
				j := s.slotOf(int(p), y)
				s.unplace(int(p), j)
				s.place(int(p), j, u, true)
				return true
			}
		}
	}
	return false
}

// shed drops whatever surplus transfer could not hand over directly,
// leaving open slots for fillOpen.
func (s *planner) shed() {
	for o := range int32(s.n) {
		if s.cnt[o] <= s.q[o] {
			continue
		}
		for _, p := range s.shedOrder(o) {
			if s.cnt[o] <= s.q[o] {
				break
			}
			s.unplace(int(p), s.slotOf(int(p), o))
		}
	}
}

// augment fills an open slot of partition p that no node under quota may
// take directly, by a breadth-first search for a chain p ← y1 ← p1 ← y2 ←
// … ← u: node y1 moves from partition p1 into p, y2 from p2 into p1, …, and
// a node u under quota (or whose quota a trade can raise) joins the last
// partition. Every node on the chain keeps its count but u, which gains
// one. With onlyNew, only pairs placed by this plan may shift, so the chain
// costs no extra movement. It reports whether it found a chain.
//
// This is an augmenting path in the flow network partitions → (partition,
// zone) → nodes. A search state is a slot (partition x, the node leaving
// it); the root is p's open slot. A partition may occur more than once on a
// chain (one node leaves it so that another of the same zone can join,
// which is how a zone at its limit makes room), so each step is checked
// against the current assignment and the whole chain again, partition by
// partition, before it is applied.
func (s *planner) augment(p int, onlyNew bool) bool {
	var under []int32
	for i := range int32(s.n) {
		if s.cnt[i] < s.q[i] || (s.q[i] < s.qc[i] && s.donor(i) >= 0) {
			under = append(under, i)
		}
	}
	if len(under) == 0 {
		return false
	}
	isEnd := func(i int32) bool { return slices.Contains(under, i) }
	if s.sseen == nil {
		s.sseen = make([]int32, s.P*s.R)
		s.sfrom = make([]int32, s.P*s.R)
	}
	s.sstamp++
	s.root = int32(p)
	queue := []int32{rootState}
	for qi := 0; qi < len(queue); qi++ {
		st := queue[qi]
		x, lv := s.partOf(st), s.leavingOf(st)
		for y := range int32(s.n) {
			if y == lv || !s.canJoin(int(x), y, lv) {
				continue
			}
			if isEnd(y) && s.chainValid(st, y) {
				s.applyChain(st, y)
				return true
			}
			for _, x2 := range s.parts[y] {
				j := s.slotOf(int(x2), y)
				if j < 0 || (onlyNew && !s.isNew[int(x2)*s.R+j]) {
					continue
				}
				st2 := x2*int32(s.R) + int32(j)
				if s.sseen[st2] == s.sstamp {
					continue
				}
				s.sseen[st2] = s.sstamp
				s.sfrom[st2] = st
				for _, u := range under {
					if u != y && s.canJoin(int(x2), u, y) && s.chainValid(st2, u) {
						s.applyChain(st2, u)
						return true
					}
				}
				queue = append(queue, st2)
			}
		}
	}
	return false
}

// rootState is the search state of augment's open slot.
const rootState = -1

func (s *planner) partOf(st int32) int32 {
	if st == rootState {
		return s.root
	}
	return st / int32(s.R)
}

func (s *planner) leavingOf(st int32) int32 {
	if st == rootState {
		return -1
	}
	return s.rep[st]
}

// chainValid reports whether applying the chain that ends with node u
// joining the partition of state st leaves every partition it touches
// within the rules.
func (s *planner) chainValid(st, u int32) bool {
	type step struct{ x, out, in int32 }
	var steps []step
	for in := u; ; st = s.sfrom[st] {
		steps = append(steps, step{s.partOf(st), s.leavingOf(st), in})
		if st == rootState {
			break
		}
		in = s.leavingOf(st)
	}
	var members []int32
	for k, a := range steps {
		if slices.ContainsFunc(steps[:k], func(b step) bool { return b.x == a.x }) {
			continue // partition checked already
		}
		members = members[:0]
		for _, i := range s.slots(int(a.x)) {
			if i >= 0 && !slices.ContainsFunc(steps, func(b step) bool { return b.x == a.x && b.out == i }) {
				members = append(members, i)
			}
		}
		for _, b := range steps {
			if b.x == a.x {
				if slices.Contains(members, b.in) {
					return false
				}
				members = append(members, b.in)
			}
		}
		if !s.membersFit(members) {
			return false
		}
	}
	return true
}

// membersFit reports whether a partition with these (distinct) members
// keeps the zone rule and can still be completed to R replicas.
func (s *planner) membersFit(members []int32) bool {
	if len(members) > s.R {
		return false
	}
	for _, i := range members {
		s.zcnt[s.zone[i]]++
	}
	ok := true
	need := 0
	for z, c := range s.zcnt {
		ok = ok && c <= s.hi[z]
		need += int(max(c, s.lo[z]))
		s.zcnt[z] = 0
	}
	return ok && need <= s.R
}

// applyChain makes node u join the partition of search state st, the end of
// a chain found by augment, and shifts every node along the chain.
func (s *planner) applyChain(st, u int32) {
	if s.cnt[u] >= s.q[u] {
		s.trade(u)
	}
	for {
		x, lv := int(s.partOf(st)), s.leavingOf(st)
		if lv < 0 {
			s.place(x, s.slotOf(x, -1), u, true)
			return
		}
		j := s.slotOf(x, lv)
		s.unplace(x, j)
		s.place(x, j, u, true)
		u, st = lv, s.sfrom[st]
	}
}

// fallback returns the node that takes an open slot of p when nothing
// better exists: the least loaded node (relative to its quota) that may
// take it under the zone rule, or failing that any node not already there.
// It is a safety net; the tests check that plans never need it.
func (s *planner) fallback(p int) int32 {
	best := int32(-1)
	for pass := 0; pass < 2 && best < 0; pass++ {
		for i := range int32(s.n) {
			if s.slotOf(p, i) >= 0 || (pass == 0 && !s.zoneFits(p, s.zone[i], -1)) {
				continue
			}
			if best < 0 || s.cnt[i]-s.q[i] < s.cnt[best]-s.q[best] {
				best = i
			}
		}
	}
	return best
}

// setQuota changes node i's replica quota, keeping the queues current.
func (s *planner) setQuota(i, q int32) {
	old := s.deficit(i)
	s.q[i] = q
	if now := s.deficit(i); now != old {
		z := s.zone[i]
		s.zdef[z] += now - old
		if s.zdef[z] > 0 {
			s.zq.push(s.zoneEntry(z))
		}
		if now > 0 {
			s.nq[z].push(s.nodeEntry(i))
		}
	}
}

// donor returns a node, other than i, whose quota was rounded up but which
// does not hold it yet, and that may hand that rounding to node i: a node of
// i's zone, or of another zone if both zones' totals stay within the floor
// and ceiling of their shares. It returns -1 if there is none. A trade keeps
// every quota within its share ± 1.
func (s *planner) donor(i int32) int32 {
	z := s.zone[i]
	spare := func(u int32) bool { return u != i && s.q[u] > s.qf[u] && s.cnt[u] < s.q[u] }
	for _, u := range s.zones[z] {
		if spare(u) {
			return u
		}
	}
	if s.zsum[z] >= s.zc[z] {
		return -1
	}
	for z2, m := range s.zones {
		if int32(z2) == z || s.zsum[z2] <= s.zf[z2] {
			continue
		}
		for _, u := range m {
			if spare(u) {
				return u
			}
		}
	}
	return -1
}

// trade raises the quota of node i to its share's ceiling by taking the
// rounding from a donor, and reports whether it could. Used for a node that
// holds more than its quota, or that alone may take an open slot, each
// trade saves a move.
func (s *planner) trade(i int32) bool {
	if s.q[i] >= s.qc[i] {
		return false
	}
	u := s.donor(i)
	if u < 0 {
		return false
	}
	s.shiftQuota(u, i)
	return true
}

// shiftQuota moves one unit of quota from node u to node i.
func (s *planner) shiftQuota(u, i int32) {
	s.setQuota(u, s.q[u]-1)
	s.setQuota(i, s.q[i]+1)
	s.zsum[s.zone[u]]--
	s.zsum[s.zone[i]]++
}

// mayShift reports whether one unit of quota may move from node u to node
// i: both stay within the floor and ceiling of their shares, and so do
// their zones.
func (s *planner) mayShift(u, i int32) bool {
	if u == i || s.q[u] <= s.qf[u] || s.q[i] >= s.qc[i] {
		return false
	}
	zu, zi := s.zone[u], s.zone[i]
	return zu == zi || (s.zsum[zu] > s.zf[zu] && s.zsum[zi] < s.zc[zi])
}

// tradeInto returns a node at its quota that may take an open slot of p once
// its quota is raised to its share's ceiling by a trade, after making the
// trade; or -1. It resolves, without moving anything, a slot that no node
// under quota may take (they all hold p already).
func (s *planner) tradeInto(p int) int32 {
	for y := range int32(s.n) {
		if s.cnt[y] == s.q[y] && s.q[y] < s.qc[y] && s.canJoin(p, y, -1) && s.trade(y) {
			return y
		}
	}
	return -1
}
