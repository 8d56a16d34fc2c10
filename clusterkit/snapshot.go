package clusterkit

import (
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/clusterkit-go/clusterkit/placement"
)

// snapshot is an immutable view of the partition map and the members,
// built whenever either changes and published through an atomic pointer:
// the lookups read it without locks and without allocating.
type snapshot struct {
	version int64
	// count is the number of partitions (0 before the first map); chunks
	// holds their entries, chunkPartitions per chunk (snapchunk.go), each
	// shared with the next snapshot while none of its partitions changed.
	count  int
	chunks []*snapChunk
	// members are the live members sorted by ID (member finds one);
	// unhealthy are the IDs of those whose Status is NodeUnhealthy. Both
	// are shared with the next snapshot while the members are unchanged.
	members   []Node
	unhealthy []string
	// membershipRev is the etcd revision of the last member change seen.
	membershipRev int64
	leader        string
	// settled: planned for exactly the current members, no handoff pending.
	settled bool
	// mine counts this node's partitions by role.
	mine roleCounts
	// live[k] counts the partitions with k live serving nodes (see
	// snapChunk.liveOf), so health is judged without a pass over the map.
	live []int
	// maintenance is why placement is frozen ("" when it is not); away
	// are the nodes whose lease expired and whose slots are reserved.
	maintenance string
	away        []string
}

// publishSnapshot stores in ptr the snapshot of v for node me after a
// batch was applied to v, and returns the snapshot in effect. A batch
// that changed neither the map (oldAssign is the map before it), the
// members nor the leader (ready records, history, requests) keeps the
// current snapshot; otherwise the new one shares the unchanged chunks of
// the current one (snapchunk.go), unless the batch is an initial read. The caller holds
// the lock that serializes writes of v.
func publishSnapshot(ptr *atomic.Pointer[snapshot], me string, v *view, leader string, initial bool, oldAssign *assignment, changes []memberChange) *snapshot {
	prev := ptr.Load()
	if prev != nil && !initial && v.assign == oldAssign && len(changes) == 0 &&
		prev.leader == leader && prev.membershipRev == v.memberRev {
		return prev
	}
	if initial {
		prev = nil
	}
	s, changed := membersSnapshot(v.members, v.memberRev, leader, prev, changes)
	chunks, known := v.parts.changedChunks(v.assign, oldAssign)
	if prev != nil && known && prev.version == oldAssign.Version && prev.count == len(v.assign.Partitions) {
		if changed == nil {
			changed = changedNodes(prev, s)
		}
		s = prev.withChunks(me, s, v.assign, oldAssign, chunks, v.parts.servingAny(changed))
	} else {
		s = nextSnapshot(me, s, v.assign, prev, oldAssign, changed)
	}
	ptr.Store(s)
	return s
}

// roleCounts counts one node's partitions: served as primary, served as a
// replica, and incoming (being received).
type roleCounts struct{ primary, replica, incoming int }

// membersSnapshot returns a snapshot of the members alone (no map), and
// the IDs whose Node may differ from prev's when it knows them (nil: it
// does not). prev (may be nil) is the snapshot before the batch that made
// changes; its members are never modified once built. It shares them when
// prev was built at the same membership revision (a map version costs
// nothing per member), and edits a copy when a few members changed (a
// join costs O(N) per node, not a sort of every member: O(N log N), which
// at 700 nodes made each join cost the cluster O(N² log N)).
func membersSnapshot(members map[string]memberRecord, membershipRev int64, leader string, prev *snapshot, changes []memberChange) (*snapshot, map[string]bool) {
	if prev != nil && prev.membershipRev == membershipRev && len(prev.members) == len(members) {
		return &snapshot{membershipRev: membershipRev, leader: leader, members: prev.members, unhealthy: prev.unhealthy}, map[string]bool{}
	}
	s := &snapshot{membershipRev: membershipRev, leader: leader}
	var changed map[string]bool
	if prev != nil && len(changes) > 0 && len(changes) <= maxMemberEdits {
		s.members, changed = editedMembers(prev.members, members, changes)
	} else {
		s.members = make([]Node, 0, len(members))
		for _, id := range slices.Sorted(maps.Keys(members)) {
			s.members = append(s.members, members[id].node())
		}
	}
	for i := range s.members {
		if s.members[i].Status == NodeUnhealthy {
			s.unhealthy = append(s.unhealthy, s.members[i].ID)
		}
	}
	return s, changed
}

// maxMemberEdits bounds the member changes of one batch that
// membersSnapshot applies one by one (each an O(N) move at worst) rather
// than by rebuilding the sorted list.
const maxMemberEdits = 16

// editedMembers returns old (sorted by ID) with the members of changes
// as members now holds them (updated, inserted or removed), and the IDs
// whose Node differs from old's: a record update that leaves the Node as
// it was (its lease, its state) changes no partition's nodes. It
// allocates the result once, with room for every insertion.
func editedMembers(old []Node, members map[string]memberRecord, changes []memberChange) ([]Node, map[string]bool) {
	out := make([]Node, len(old), len(old)+len(changes))
	copy(out, old)
	changed := make(map[string]bool, len(changes))
	for _, c := range changes {
		id := c.rec.ID
		i, found := searchMembers(out, id)
		rec, live := members[id]
		switch {
		case live && found:
			if n := rec.node(); !sameNodeValue(&out[i], &n) {
				out[i], changed[id] = n, true
			}
		case live:
			out, changed[id] = slices.Insert(out, i, rec.node()), true
		case found:
			out, changed[id] = slices.Delete(out, i, i+1), true
		}
	}
	return out, changed
}

// newSnapshot builds a snapshot for node me. a may be nil (no map yet).
func newSnapshot(me string, members map[string]memberRecord, a *assignment, membershipRev int64, leader string) *snapshot {
	s, _ := membersSnapshot(members, membershipRev, leader, nil, nil)
	return nextSnapshot(me, s, a, nil, nil, nil)
}

// nextSnapshot completes s (members only, see membersSnapshot) as the
// snapshot of map a that follows prev (built from the map prevMap; both
// may be nil): a chunk whose partitions' states and serving nodes'
// records are unchanged is shared with prev, so a change costs the
// chunks it touched, not the whole map. changed are the IDs whose Node
// differs between prev and s, as membersSnapshot reported them (nil: not
// known, compared here).
func nextSnapshot(me string, s *snapshot, a *assignment, prev *snapshot, prevMap *assignment, changed map[string]bool) *snapshot {
	if a == nil {
		return s
	}
	s.version = a.Version
	s.setMapState(a)
	P := len(a.Partitions)
	s.count, s.chunks = P, make([]*snapChunk, chunkCount(P))
	w := &chunkWriter{s: s}
	reuse := prev != nil && prevMap != nil && prev.count == P && len(prevMap.Partitions) == P
	if reuse && changed == nil {
		changed = changedNodes(prev, s)
	}
	unchanged := func(p int) bool {
		ps := a.Partitions[p]
		return reuse && samePartition(ps, prevMap.Partitions[p]) && !slices.ContainsFunc(ps.Serving, func(id string) bool { return changed[id] })
	}
	for c := range s.chunks {
		lo, hi := chunkRange(c, P)
		same := true
		for p := lo; p < hi && same; p++ {
			same = unchanged(p)
		}
		if same {
			s.chunks[c] = prev.chunks[c]
		} else {
			ch := w.chunk(c)
			for p := lo; p < hi; p++ {
				s.buildPartition(ch, me, p, a.Partitions[p])
			}
		}
		for p := lo; p < hi; p++ {
			s.tally(me, p, a.Partitions[p], 1)
		}
	}
	return s
}

// searchMembers returns where id is, or would be inserted, in members
// (sorted by ID), and whether it is there.
func searchMembers(members []Node, id string) (int, bool) {
	return slices.BinarySearchFunc(members, id, func(n Node, id string) int { return strings.Compare(n.ID, id) })
}

// member returns the live member id, if it is one: a binary search, so
// that a member change costs no index rebuild.
func (s *snapshot) member(id string) (*Node, bool) {
	if i, ok := searchMembers(s.members, id); ok {
		return &s.members[i], true
	}
	return nil, false
}

// withChunks completes s (members only, see membersSnapshot) as the
// snapshot of map a for node me, from prev (the snapshot of prevMap),
// when a differs from prevMap only in the given chunks and, among the
// nodes the map names, only those whose records changed are served in
// renamed (partitions of a, in index order): the other chunks are shared
// with prev, and the counts adjusted by the changed partitions only, so a
// change costs a copy of the chunk pointers plus the partitions it
// touched. prev is not modified.
func (prev *snapshot) withChunks(me string, s *snapshot, a, prevMap *assignment, chunks []int, renamed []int) *snapshot {
	s.version, s.mine, s.live = a.Version, prev.mine, slices.Clone(prev.live)
	s.setMapState(a)
	s.count, s.chunks = prev.count, prev.chunks
	if len(chunks) == 0 && len(renamed) == 0 {
		return s // no partition changed: share prev's (immutable) chunks
	}
	s.chunks = slices.Clone(prev.chunks)
	w := &chunkWriter{s: s}
	rebuilt := map[int]bool{}
	for _, c := range chunks {
		lo, hi := chunkRange(c, len(a.Partitions))
		for p := lo; p < hi; p++ {
			if old, ps := prevMap.Partitions[p], a.Partitions[p]; !samePartition(ps, old) {
				s.rebuild(w, me, p, old, ps)
				rebuilt[p] = true
			}
		}
	}
	for _, p := range renamed {
		ps, old := a.Partitions[p], prevMap.Partitions[p]
		if rebuilt[p] {
			old = ps
		}
		s.rebuild(w, me, p, old, ps)
	}
	return s
}

// rebuild replaces partition p's entries, built from old, by ps's.
func (s *snapshot) rebuild(w *chunkWriter, me string, p int, old, ps partitionState) {
	s.tally(me, p, old, -1)
	c, _ := chunkOf(p)
	s.buildPartition(w.chunk(c), me, p, ps)
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
	s.settled = slices.EqualFunc(a.Planned, s.members, func(pn plannedNode, m Node) bool {
		return sameNode(pn, plannedNode{ID: m.ID, Zone: m.Zone, Weight: m.Weight, Incarnation: m.Incarnation})
	}) && a.incomingCount() == 0
}

// tally adds (d 1) or removes (d -1) partition p's part of the counts
// (its entries as they stand): this node's roles and incoming
// partitions, and the live histogram.
func (s *snapshot) tally(me string, p int, ps partitionState, d int) {
	switch {
	case s.primaryAt(p):
		s.mine.primary += d
	case s.replicaAt(p):
		s.mine.replica += d
	}
	live := int(s.liveAt(p))
	for len(s.live) <= live {
		s.live = append(s.live, 0)
	}
	s.live[live] += d
	for _, in := range ps.Incoming {
		if in.Node == me {
			s.mine.incoming += d
		}
	}
}

// buildPartition fills partition p's entries, in ch (its chunk, owned by
// the snapshot under construction), from ps.
func (s *snapshot) buildPartition(ch *snapChunk, me string, p int, ps partitionState) {
	_, i := chunkOf(p)
	part := Partition{ID: PartitionID(p), Index: p, Epoch: ps.Epoch, ReplicaNodes: []string{}, IncomingNodes: []string{}}
	ch.isPrimary[i], ch.isReplica[i], ch.liveOf[i] = false, false, 0
	if len(ps.Serving) > 0 {
		part.PrimaryNode = ps.Serving[0]
		// Shared with the map, which is immutable, as the Partition is
		// read-only to its readers; the capacity ends at the slice, so an
		// append copies.
		n := len(ps.Serving)
		part.ReplicaNodes = ps.Serving[1:n:n]
		ch.isPrimary[i] = ps.Serving[0] == me
		ch.isReplica[i] = slices.Contains(ps.Serving[1:], me)
	}
	for _, in := range ps.Incoming {
		part.IncomingNodes = append(part.IncomingNodes, in.Node)
	}
	ch.partitions[i] = part
	ch.serving[i] = s.nodesFor(part)
	for _, n := range ch.serving[i] {
		if n.Status != NodeOffline {
			ch.liveOf[i]++
		}
	}
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
// in one only included): a merge of the two sorted member lists.
func changedNodes(a, b *snapshot) map[string]bool {
	out := map[string]bool{}
	x, y := a.members, b.members
	for len(x) > 0 || len(y) > 0 {
		switch c := compareHeads(x, y); {
		case c < 0:
			out[x[0].ID] = true
			x = x[1:]
		case c > 0:
			out[y[0].ID] = true
			y = y[1:]
		default:
			if !sameNodeValue(&x[0], &y[0]) {
				out[x[0].ID] = true
			}
			x, y = x[1:], y[1:]
		}
	}
	return out
}

// compareHeads orders the first members of two sorted lists by ID, an
// empty list after any member.
func compareHeads(x, y []Node) int {
	switch {
	case len(x) == 0:
		return 1
	case len(y) == 0:
		return -1
	}
	return strings.Compare(x[0].ID, y[0].ID)
}

func sameNodeValue(a, b *Node) bool {
	return a.ID == b.ID && a.Addr == b.Addr && a.Zone == b.Zone && a.Weight == b.Weight && a.Status == b.Status &&
		a.Incarnation == b.Incarnation && a.StartedAt.Equal(b.StartedAt) && maps.Equal(a.Services, b.Services)
}

// node returns the member record of id, or an offline placeholder.
func (s *snapshot) node(id string) Node {
	if n, ok := s.member(id); ok {
		return *n
	}
	return Node{ID: id, Status: NodeOffline}
}

// index returns p's index if p names a partition of this snapshot.
func (s *snapshot) index(p *Partition) (int, bool) {
	if s == nil || p == nil || p.Index < 0 || p.Index >= s.count {
		return 0, false
	}
	return p.Index, true
}

// partitionOf returns the partition of key, or nil before the first map.
func (s *snapshot) partitionOf(key string) *Partition {
	if s == nil || s.count == 0 {
		return nil
	}
	return s.part(placement.PartitionOf(key, s.count))
}
