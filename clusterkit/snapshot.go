package clusterkit

import (
	"maps"
	"slices"
	"sync/atomic"

	"github.com/clusterkit-go/clusterkit/placement"
)

// snapshot is an immutable view of the partition map and the members,
// built whenever either changes and published through an atomic pointer:
// the lookups read it without locks and without allocating.
type snapshot struct {
	version    int64
	partitions []Partition
	// serving[p] is partition p's serving nodes (primary first; empty, not
	// nil, when none serves), built with the partition and shared with the
	// next snapshot while p and its nodes' records stay unchanged.
	serving [][]Node
	// isPrimary and isReplica are this node's roles, per partition.
	isPrimary []bool
	isReplica []bool
	// members are the live members sorted by ID; byID also names nodes the
	// map still mentions after they left (Status NodeOffline).
	members []Node
	byID    map[string]*Node
	// membershipRev is the etcd revision of the last member change seen.
	membershipRev int64
	leader        string
	// settled: planned for exactly the current members, no handoff pending.
	settled bool
	// mine counts this node's partitions by role.
	mine roleCounts
	// liveOf[p] is partition p's number of live (not offline) serving
	// nodes; live[k] counts the partitions with k of them, so health is
	// judged without a pass over the map.
	liveOf []uint8
	live   []int
	// maintenance is why placement is frozen ("" when it is not); away
	// are the nodes whose lease expired and whose slots are reserved.
	maintenance string
	away        []string
}

// publishSnapshot stores in ptr the snapshot of v for node me after a
// batch was applied to v, and returns the snapshot in effect. A batch
// that changed neither the map (oldAssign is the map before it), the
// members nor the leader (ready records, history, requests) keeps the
// current snapshot; otherwise the new one reuses the unchanged entries of
// the current one, unless the batch is an initial read. The caller holds
// the lock that serializes writes of v.
func publishSnapshot(ptr *atomic.Pointer[snapshot], me string, v *view, leader string, initial bool, oldAssign *assignment, membersChanged bool) *snapshot {
	prev := ptr.Load()
	if prev != nil && !initial && v.assign == oldAssign && !membersChanged &&
		prev.leader == leader && prev.membershipRev == v.memberRev {
		return prev
	}
	if initial {
		prev = nil
	}
	s := membersSnapshot(v.members, v.memberRev, leader)
	chunks, known := v.parts.changedChunks(v.assign, oldAssign)
	if prev != nil && known && prev.version == oldAssign.Version && len(prev.partitions) == len(v.assign.Partitions) {
		s = prev.withChunks(me, s, v.assign, oldAssign, chunks, named(v.parts.slotOf, changedNodes(prev, s)))
	} else {
		s = nextSnapshot(me, v.members, v.assign, v.memberRev, leader, prev, oldAssign)
	}
	ptr.Store(s)
	return s
}

// named returns the nodes of ids that have a slot in the map's node table
// (slotOf): those the map may name.
func named(slotOf map[string]int, ids map[string]bool) []string {
	var out []string
	for id := range ids {
		if _, ok := slotOf[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

// roleCounts counts one node's partitions: served as primary, served as a
// replica, and incoming (being received).
type roleCounts struct{ primary, replica, incoming int }

// membersSnapshot returns a snapshot of the members alone (no map).
func membersSnapshot(members map[string]memberRecord, membershipRev int64, leader string) *snapshot {
	s := &snapshot{membershipRev: membershipRev, leader: leader, byID: make(map[string]*Node, len(members))}
	for _, id := range slices.Sorted(maps.Keys(members)) {
		s.members = append(s.members, members[id].node())
	}
	for i := range s.members {
		s.byID[s.members[i].ID] = &s.members[i]
	}
	return s
}

// newSnapshot builds a snapshot for node me. a may be nil (no map yet).
func newSnapshot(me string, members map[string]memberRecord, a *assignment, membershipRev int64, leader string) *snapshot {
	return nextSnapshot(me, members, a, membershipRev, leader, nil, nil)
}

// nextSnapshot builds the snapshot that follows prev (built from the map
// prevMap; both may be nil): a partition whose state and serving nodes'
// records are unchanged shares prev's entries, so a change costs the
// partitions it touched, not the whole map.
func nextSnapshot(me string, members map[string]memberRecord, a *assignment, membershipRev int64, leader string,
	prev *snapshot, prevMap *assignment) *snapshot {
	s := membersSnapshot(members, membershipRev, leader)
	if a == nil {
		return s
	}
	s.version = a.Version
	s.setMapState(a)
	P := len(a.Partitions)
	s.partitions = make([]Partition, P)
	s.serving = make([][]Node, P)
	s.isPrimary = make([]bool, P)
	s.isReplica = make([]bool, P)
	s.liveOf = make([]uint8, P)
	reuse := prev != nil && prevMap != nil && len(prev.partitions) == P && len(prevMap.Partitions) == P
	var changed map[string]bool
	if reuse {
		changed = changedNodes(prev, s)
	}
	for p, ps := range a.Partitions {
		if reuse && samePartition(ps, prevMap.Partitions[p]) && !slices.ContainsFunc(ps.Serving, func(id string) bool { return changed[id] }) {
			s.partitions[p] = prev.partitions[p]
			s.serving[p] = prev.serving[p]
			s.isPrimary[p], s.isReplica[p], s.liveOf[p] = prev.isPrimary[p], prev.isReplica[p], prev.liveOf[p]
		} else {
			s.buildPartition(me, p, ps)
		}
		s.mine.count(s.isPrimary[p], s.isReplica[p])
		for len(s.live) <= int(s.liveOf[p]) {
			s.live = append(s.live, 0)
		}
		s.live[s.liveOf[p]]++
		for _, in := range ps.Incoming {
			if in.Node == me {
				s.mine.incoming++
			}
		}
	}
	return s
}

// withChunks completes s (members only, see membersSnapshot) as the
// snapshot of map a for node me, from prev (the snapshot of prevMap),
// when a differs from prevMap only in the given chunks and, among the
// nodes the map names, only those of renamed changed their records: the
// other partitions' entries are copied, and the counts adjusted by the
// changed partitions only, so a change costs a copy of the arrays plus
// the partitions it touched.
func (prev *snapshot) withChunks(me string, s *snapshot, a, prevMap *assignment, chunks []int, renamed []string) *snapshot {
	s.version, s.mine, s.live = a.Version, prev.mine, slices.Clone(prev.live)
	s.setMapState(a)
	if len(chunks) == 0 && len(renamed) == 0 {
		// No partition changed: share prev's (immutable) entries.
		s.partitions, s.isPrimary, s.isReplica, s.liveOf, s.serving = prev.partitions, prev.isPrimary, prev.isReplica, prev.liveOf, prev.serving
		return s
	}
	s.partitions, s.isPrimary = slices.Clone(prev.partitions), slices.Clone(prev.isPrimary)
	s.isReplica, s.liveOf = slices.Clone(prev.isReplica), slices.Clone(prev.liveOf)
	s.serving = slices.Clone(prev.serving)
	rebuilt := map[int]bool{}
	for _, c := range chunks {
		lo, hi := chunkRange(c, len(a.Partitions))
		for p := lo; p < hi; p++ {
			if old, ps := prevMap.Partitions[p], a.Partitions[p]; !samePartition(ps, old) {
				s.rebuild(me, p, old, ps)
				rebuilt[p] = true
			}
		}
	}
	if len(renamed) == 0 {
		return s
	}
	for p, ps := range a.Partitions {
		if slices.ContainsFunc(ps.Serving, func(id string) bool { return slices.Contains(renamed, id) }) {
			old := prevMap.Partitions[p]
			if rebuilt[p] {
				old = ps
			}
			s.rebuild(me, p, old, ps)
		}
	}
	return s
}

// rebuild replaces partition p's entries, built from old, by ps's.
func (s *snapshot) rebuild(me string, p int, old, ps partitionState) {
	s.tally(me, p, old, -1)
	s.isPrimary[p], s.isReplica[p], s.liveOf[p] = false, false, 0
	s.buildPartition(me, p, ps)
	s.tally(me, p, ps, 1)
}

// setMapState sets what a snapshot takes from the map besides its
// partitions: maintenance, away nodes, settled.
func (s *snapshot) setMapState(a *assignment) {
	if a.Maintenance != nil {
		s.maintenance = a.Maintenance.Reason
	}
	for _, pn := range a.Planned {
		if pn.away() {
			s.away = append(s.away, pn.ID)
		}
	}
	live := make([]plannedNode, len(s.members))
	for i, m := range s.members {
		live[i] = plannedNode{ID: m.ID, Zone: m.Zone, Weight: m.Weight, Incarnation: m.Incarnation}
	}
	s.settled = slices.EqualFunc(a.Planned, live, sameNode) && a.incomingCount() == 0
}

// tally adds (d 1) or removes (d -1) partition p's part of the counts:
// this node's roles and incoming partitions, and the live histogram.
func (s *snapshot) tally(me string, p int, ps partitionState, d int) {
	switch {
	case s.isPrimary[p]:
		s.mine.primary += d
	case s.isReplica[p]:
		s.mine.replica += d
	}
	for len(s.live) <= int(s.liveOf[p]) {
		s.live = append(s.live, 0)
	}
	s.live[s.liveOf[p]] += d
	for _, in := range ps.Incoming {
		if in.Node == me {
			s.mine.incoming += d
		}
	}
}

// buildPartition fills partition p's entries from ps.
func (s *snapshot) buildPartition(me string, p int, ps partitionState) {
	part := Partition{ID: PartitionID(p), Index: p, Epoch: ps.Epoch, ReplicaNodes: []string{}, IncomingNodes: []string{}}
	for _, id := range ps.Serving {
		if n, ok := s.byID[id]; ok && n.Status != NodeOffline {
			s.liveOf[p]++
		}
	}
	if len(ps.Serving) > 0 {
		part.PrimaryNode = ps.Serving[0]
		part.ReplicaNodes = slices.Clone(ps.Serving[1:])
		s.isPrimary[p] = ps.Serving[0] == me
		s.isReplica[p] = slices.Contains(ps.Serving[1:], me)
	}
	for _, in := range ps.Incoming {
		part.IncomingNodes = append(part.IncomingNodes, in.Node)
	}
	s.partitions[p] = part
	s.serving[p] = s.nodesFor(part)
}

// nodesFor builds the serving nodes of part, primary first, from the
// snapshot's member records (empty, not nil, when none serves).
func (s *snapshot) nodesFor(part Partition) []Node {
	if part.PrimaryNode == "" {
		return []Node{}
	}
	nodes := make([]Node, 1+len(part.ReplicaNodes))
	nodes[0] = s.node(part.PrimaryNode)
	for i, id := range part.ReplicaNodes {
		nodes[1+i] = s.node(id)
	}
	return nodes
}

// changedNodes returns the IDs whose Node differs between a and b (present
// in one only included).
func changedNodes(a, b *snapshot) map[string]bool {
	out := map[string]bool{}
	for id, n := range a.byID {
		if m, ok := b.byID[id]; !ok || !sameNodeValue(n, m) {
			out[id] = true
		}
	}
	for id := range b.byID {
		if _, ok := a.byID[id]; !ok {
			out[id] = true
		}
	}
	return out
}

func sameNodeValue(a, b *Node) bool {
	return a.ID == b.ID && a.Addr == b.Addr && a.Zone == b.Zone && a.Weight == b.Weight && a.Status == b.Status &&
		a.Incarnation == b.Incarnation && a.StartedAt.Equal(b.StartedAt) && maps.Equal(a.Services, b.Services)
}

// node returns the member record of id, or an offline placeholder.
func (s *snapshot) node(id string) Node {
	if n, ok := s.byID[id]; ok {
		return *n
	}
	return Node{ID: id, Status: NodeOffline}
}

// index returns p's index if p names a partition of this snapshot.
func (s *snapshot) index(p *Partition) (int, bool) {
	if s == nil || p == nil || p.Index < 0 || p.Index >= len(s.partitions) {
		return 0, false
	}
	return p.Index, true
}

// partitionOf returns the partition of key, or nil before the first map.
func (s *snapshot) partitionOf(key string) *Partition {
	if s == nil || len(s.partitions) == 0 {
		return nil
	}
	return &s.partitions[placement.PartitionOf(key, len(s.partitions))]
}

func (c *roleCounts) count(primary, replica bool) {
	switch {
	case primary:
		c.primary++
	case replica:
		c.replica++
	}
}
