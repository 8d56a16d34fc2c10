package placement

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Limits of Plan's input, far above any real cluster; they keep a plan's
// memory bounded (a few bytes per replica slot).
const (
	// MaxPartitions is the largest partition count Plan accepts.
	MaxPartitions = 1 << 20
	// MaxReplicaSlots is the largest number of replica slots, partitions ×
	// min(replication factor, nodes), Plan accepts.
	MaxReplicaSlots = 1 << 26
)

// minWeightRatio is the smallest weight relative to the largest that Plan
// tells apart from it; see Node.
const minWeightRatio = 1e-12

// Plan returns the assignment of partitions partitions to nodes with
// min(replicationFactor, len(nodes)) replicas each, moving as little as
// possible from prev. prev may be nil (the first plan) and may name nodes
// that are not in nodes (they left); the order of nodes does not matter.
//
// The result holds the guarantees listed in the package documentation:
// deterministic, balanced by weight, minimal movement, primaries that leave
// are replaced by surviving replicas, replicas on distinct nodes and spread
// over zones.
//
// A malformed partition of prev is read robustly, never rejected: IDs that
// are empty or not in nodes count as departed nodes, a repeated ID counts
// once (its first position), and entries beyond the replica count are
// dropped like surplus replicas. Only a prev whose partition count differs
// from partitions is an error. Every error wraps ErrInvalidInput and names
// the problem; Plan never panics on any input.
//
// Plan is a pure function: it does not modify prev or nodes, keeps no
// reference to them, and is safe for concurrent use. The returned Assignment
// is new (it shares no slices with prev) and must be treated as immutable.
func Plan(prev *Assignment, nodes []Node, partitions, replicationFactor int) (*Assignment, error) {
	if err := validate(prev, nodes, partitions, replicationFactor); err != nil {
		return nil, err
	}
	s := newPlanner(prev, nodes, partitions, replicationFactor)
	s.planReplicas()
	s.planPrimaries()
	return s.assignment(), nil
}

func validate(prev *Assignment, nodes []Node, partitions, rf int) error {
	if partitions < 1 || partitions > MaxPartitions {
		return fmt.Errorf("%w: partition count %d, want 1 to %d", ErrInvalidInput, partitions, MaxPartitions)
	}
	if rf < 1 {
		return fmt.Errorf("%w: replication factor %d, want at least 1", ErrInvalidInput, rf)
	}
	if len(nodes) == 0 {
		return fmt.Errorf("%w: no nodes", ErrInvalidInput)
	}
	seen := make(map[string]struct{}, len(nodes))
	for k, n := range nodes {
		if n.ID == "" {
			return fmt.Errorf("%w: node %d has an empty ID", ErrInvalidInput, k)
		}
		if _, dup := seen[n.ID]; dup {
			return fmt.Errorf("%w: duplicate node ID %q", ErrInvalidInput, n.ID)
		}
		seen[n.ID] = struct{}{}
		if n.Weight < 0 || math.IsNaN(n.Weight) || math.IsInf(n.Weight, 0) {
			return fmt.Errorf("%w: node %q has weight %v, want a finite number ≥ 0", ErrInvalidInput, n.ID, n.Weight)
		}
	}
	if slots := partitions * min(rf, len(nodes)); slots > MaxReplicaSlots {
		return fmt.Errorf("%w: %d partitions × %d replicas is %d replica slots, want at most %d",
			ErrInvalidInput, partitions, min(rf, len(nodes)), slots, MaxReplicaSlots)
	}
	if prev != nil && len(prev.Replicas) != partitions {
		return fmt.Errorf("%w: previous assignment has %d partitions, want %d", ErrInvalidInput, len(prev.Replicas), partitions)
	}
	return nil
}

// planner holds the working state of one Plan call. Nodes are numbered by
// ascending ID and zones by ascending name, so that every decision, made on
// these numbers, is independent of the order of the input.
type planner struct {
	P, R, n int

	ids   []string
	zone  []int32   // zone of each node
	w     []float64 // weights, 0 replaced by 1, scaled so the largest is 1, at least minWeightRatio
	h     []uint64  // hash of each ID, for deterministic tie-breaks
	zh    []uint64  // hash of each zone name
	zones [][]int32 // members of each zone
	lo    []int32   // per zone: fewest replicas of one partition
	hi    []int32   // per zone: most replicas of one partition
	hasLo bool      // some lo > 0 (fewer zones than replicas)

	// The previous assignment as node numbers: partition p's surviving
	// holders in order are prevIdx[prevOff[p]:prevOff[p+1]], duplicates
	// removed; prevPrim[p] is its previous primary if it survives, else -1.
	prevIdx  []int32
	prevOff  []int32
	prevPrim []int32
	// prevPrimGone[p]: partition p had a primary in prev that is not in
	// nodes (it left).
	prevPrimGone []bool

	q      []int32   // replica quota per node
	qf     []int32   // floor of each node's replica share
	qc     []int32   // ceiling of each node's replica share
	zsum   []int32   // per zone: sum of its nodes' quotas
	zf     []int32   // per zone: floor of its share
	zc     []int32   // per zone: ceiling of its share
	pf     []int32   // floor of each node's primary share
	pcl    []int32   // ceiling of each node's primary share
	pshare []float64 // each node's primary share
	cnt    []int32   // replicas held per node
	rep    []int32   // P×R slots, node or -1
	isNew  []bool    // per slot: placed by this plan (not kept from prev)
	parts  [][]int32 // per node: partitions it was placed in (may hold stale entries)

	// Largest-deficit-first queues of nodes that are under quota, one per
	// zone, and of zones. Entries may be stale; see bump.
	heapsOn bool
	zdef    []int32
	zq      entryHeap
	nq      []entryHeap

	zcnt  []int32 // scratch: per-zone counts
	mark  []int32 // scratch: per-node stamps
	stamp int32
	seen  []int32 // scratch: per-partition stamps (currentParts only)
	pstmp int32
	skipZ []entry
	skipN []entry

	fallbacks int // slots filled by fallback (the tests expect none)

	sseen  []int32 // augment: per slot, search stamp
	sfrom  []int32 // augment: per slot, the state it was reached from
	sstamp int32
	root   int32 // augment: the partition with the open slot

	prim       []int32   // primary per partition
	pc         []int32   // primaries per node
	held       []bool    // per slot: its node held the partition before
	restricted []bool    // per partition: only previous holders may lead
	primOf     [][]int32 // per node: partitions it leads (may be stale)
	via        []int32   // primary paths: partition through which a node was reached
	from       []int32   // primary paths (up): node that takes via's partition
	queue      []int32   // primary paths: BFS queue
}

func newPlanner(prev *Assignment, nodes []Node, partitions, rf int) *planner {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	n := len(sorted)
	s := &planner{
		P:    partitions,
		R:    min(rf, n),
		n:    n,
		ids:  make([]string, n),
		zone: make([]int32, n),
		w:    make([]float64, n),
		h:    make([]uint64, n),
		cnt:  make([]int32, n),
		mark: make([]int32, n),
		seen: make([]int32, partitions),
	}
	zoneNames := make([]string, 0, 4)
	for _, nd := range sorted {
		zoneNames = append(zoneNames, nd.Zone)
	}
	slices.Sort(zoneNames)
	zoneNames = slices.Compact(zoneNames)
	s.zones = make([][]int32, len(zoneNames))
	s.zh = make([]uint64, len(zoneNames))
	for z, name := range zoneNames {
		s.zh[z] = xxhash.Sum64String(name)
	}
	maxW := 0.0
	for i, nd := range sorted {
		s.ids[i] = nd.ID
		z, _ := slices.BinarySearch(zoneNames, nd.Zone)
		s.zone[i] = int32(z)
		s.zones[z] = append(s.zones[z], int32(i))
		s.w[i] = nd.Weight
		if s.w[i] == 0 {
			s.w[i] = 1
		}
		maxW = max(maxW, s.w[i])
		s.h[i] = xxhash.Sum64String(nd.ID)
	}
	for i := range s.w {
		s.w[i] = max(s.w[i]/maxW, minWeightRatio)
	}
	sizes := make([]int, len(s.zones))
	for z, m := range s.zones {
		sizes[z] = len(m)
	}
	s.lo, s.hi = zoneBounds(sizes, s.R)
	for _, l := range s.lo {
		s.hasLo = s.hasLo || l > 0
	}
	s.zcnt = make([]int32, len(s.zones))
	s.readPrev(prev)
	s.quotas()
	return s
}

// readPrev translates prev into node numbers.
func (s *planner) readPrev(prev *Assignment) {
	s.prevOff = make([]int32, s.P+1)
	s.prevPrim = make([]int32, s.P)
	s.prevPrimGone = make([]bool, s.P)
	for p := range s.prevPrim {
		s.prevPrim[p] = -1
	}
	if prev == nil {
		return
	}
	index := make(map[string]int32, s.n)
	for i, id := range s.ids {
		index[id] = int32(i)
	}
	for p, ids := range prev.Replicas {
		s.stamp++
		for k, id := range ids {
			i, ok := index[id]
			if k == 0 && !ok {
				s.prevPrimGone[p] = true
			}
			if !ok || s.mark[i] == s.stamp {
				continue
			}
			s.mark[i] = s.stamp
			if k == 0 {
				s.prevPrim[p] = i
			}
			s.prevIdx = append(s.prevIdx, i)
		}
		s.prevOff[p+1] = int32(len(s.prevIdx))
	}
}

func (s *planner) prevOf(p int) []int32 { return s.prevIdx[s.prevOff[p]:s.prevOff[p+1]] }

// quotas sets the replica quotas: each node's ideal share of the P·R slots,
// rounded down or up so that they sum to P·R (zone by zone), the ones rounded
// up chosen first among nodes already holding that much. qf and qc keep the
// floor and ceiling of each share: a quota may later be traded within them
// (see trade) when that saves a move.
func (s *planner) quotas() {
	held := make([]int, s.n)
	for _, i := range s.prevIdx {
		held[i]++
	}
	share, zoneShare := replicaShares(s.w, s.zones, s.lo, s.hi, s.P, s.R)

	// Round the zones' totals, then the nodes' quotas within each zone.
	zheld := make([]int, len(s.zones))
	zlimit := make([]int, len(s.zones))
	for z, m := range s.zones {
		for _, i := range m {
			zheld[z] += held[i]
		}
		zlimit[z] = s.P * int(s.hi[z])
	}
	ztotal := roundShares(zoneShare, zheld, zlimit, s.P*s.R)
	s.zsum = make([]int32, len(ztotal))
	for z, v := range ztotal {
		s.zsum[z] = int32(v)
	}
	s.zf, s.zc = bounds(zoneShare, s.zsum, s.P*s.R)
	s.q = make([]int32, s.n)
	for z, m := range s.zones {
		sh := make([]float64, len(m))
		hd := make([]int, len(m))
		lim := make([]int, len(m))
		for k, i := range m {
			sh[k], hd[k], lim[k] = share[i], held[i], s.P
		}
		for k, v := range roundShares(sh, hd, lim, ztotal[z]) {
			s.q[m[k]] = int32(v)
		}
	}
	s.qf, s.qc = bounds(share, s.q, s.P)
}

// bounds returns the floor and ceiling of each share, widened to include the
// quota q (they differ only by floating-point error) and capped at limit.
func bounds(share []float64, q []int32, limit int) (lo, hi []int32) {
	lo = make([]int32, len(q))
	hi = make([]int32, len(q))
	for i, v := range share {
		lo[i] = min(q[i], int32(min(math.Floor(v), float64(limit))))
		hi[i] = max(q[i], int32(min(math.Ceil(v), float64(limit))))
	}
	return lo, hi
}

// assignment renders the plan: each partition's primary first, then the
// other replicas that held it before in their previous order, then the new
// ones by ID.
func (s *planner) assignment() *Assignment {
	R := s.R
	out := make([]string, s.P*R)
	a := &Assignment{Replicas: make([][]string, s.P)}
	order := make([]int32, 0, R)
	var fresh []int32
	for p := range s.P {
		s.stamp++
		for _, i := range s.slots(p) {
			s.mark[i] = s.stamp
		}
		order = append(order[:0], s.prim[p])
		s.mark[s.prim[p]] = 0
		for _, i := range s.prevOf(p) {
			if s.mark[i] == s.stamp {
				order = append(order, i)
				s.mark[i] = 0
			}
		}
		fresh = fresh[:0]
		for _, i := range s.slots(p) {
			if s.mark[i] == s.stamp {
				fresh = append(fresh, i)
			}
		}
		slices.Sort(fresh)
		order = append(order, fresh...)
		row := out[p*R : (p+1)*R : (p+1)*R]
		for k, i := range order {
			row[k] = s.ids[i]
		}
		a.Replicas[p] = row
	}
	return a
}

// mix is a 64-bit finalizer (SplitMix64) used for deterministic,
// well-spread tie-breaks.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
