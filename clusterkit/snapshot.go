package clusterkit

import (
	"maps"
	"slices"

	"github.com/clusterkit-go/clusterkit/placement"
)

// snapshot is an immutable view of the partition map and the members,
// built whenever either changes and published through an atomic pointer:
// the lookups read it without locks and without allocating.
type snapshot struct {
	version    int64
	partitions []Partition
	// serving[p] is partition p's serving nodes (primary first); replicas[p]
	// aliases serving[p][1:]; primaries[p] points at serving[p][0].
	serving   [][]Node
	replicas  [][]Node
	primaries []*Node
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
	// maintenance is why placement is frozen ("" when it is not); away
	// are the nodes whose lease expired and whose slots are reserved.
	maintenance string
	away        []string
}

// roleCounts counts one node's partitions: served as primary, served as a
// replica, and incoming (being received).
type roleCounts struct{ primary, replica, incoming int }

// newSnapshot builds a snapshot for node me. a may be nil (no map yet).
func newSnapshot(me string, members map[string]memberRecord, a *assignment, membershipRev int64, leader string) *snapshot {
	s := &snapshot{membershipRev: membershipRev, leader: leader, byID: make(map[string]*Node, len(members))}
	for _, id := range slices.Sorted(maps.Keys(members)) {
		s.members = append(s.members, members[id].node())
	}
	for i := range s.members {
		s.byID[s.members[i].ID] = &s.members[i]
	}
	if a == nil {
		return s
	}
	s.version = a.Version
	if a.Maintenance != nil {
		s.maintenance = a.Maintenance.Reason
	}
	for _, pn := range a.Planned {
		if pn.away() {
			s.away = append(s.away, pn.ID)
		}
	}
	s.settled = slices.EqualFunc(a.Planned, plannedOf(members), sameNode) && a.incomingCount() == 0
	P := len(a.Partitions)
	s.partitions = make([]Partition, P)
	s.serving = make([][]Node, P)
	s.replicas = make([][]Node, P)
	s.primaries = make([]*Node, P)
	s.isPrimary = make([]bool, P)
	s.isReplica = make([]bool, P)
	for p, ps := range a.Partitions {
		part := Partition{ID: PartitionID(p), Index: p, Epoch: ps.Epoch, ReplicaNodes: []string{}, IncomingNodes: []string{}}
		nodes := make([]Node, len(ps.Serving))
		for i, id := range ps.Serving {
			nodes[i] = s.node(id)
		}
		if len(ps.Serving) > 0 {
			part.PrimaryNode = ps.Serving[0]
			part.ReplicaNodes = slices.Clone(ps.Serving[1:])
			s.primaries[p] = &nodes[0]
			s.replicas[p] = nodes[1:]
			s.isPrimary[p] = ps.Serving[0] == me
			s.isReplica[p] = slices.Contains(ps.Serving[1:], me)
		} else {
			s.replicas[p] = []Node{}
		}
		s.mine.count(s.isPrimary[p], s.isReplica[p])
		for _, in := range ps.Incoming {
			part.IncomingNodes = append(part.IncomingNodes, in.Node)
			if in.Node == me {
				s.mine.incoming++
			}
		}
		s.serving[p] = nodes
		s.partitions[p] = part
	}
	return s
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
