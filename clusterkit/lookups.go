package clusterkit

import "sync/atomic"

// lookups answers the partition lookups from an immutable snapshot read
// through an atomic pointer: no lock, no allocation. ClusterKit and Router
// embed it; whoever owns the snapshot stores a new one (the follower for a
// node, the router's watch loop for a Router). Safe for concurrent use; the
// zero value answers ErrNotStarted and nil until a snapshot is stored.
type lookups struct {
	snap atomic.Pointer[snapshot]
}

// GetPartition returns the partition that key belongs to. The result is
// shared and read-only. It fails with ErrNotStarted before the node holds
// a partition map. It does not allocate.
func (l *lookups) GetPartition(key string) (*Partition, error) {
	p := l.snap.Load().partitionOf(key)
	if p == nil {
		return nil, ErrNotStarted
	}
	return p, nil
}

// GetPrimary returns the node that serves p as primary in the current map,
// or nil (no map yet, or p is not a partition of this cluster). The result
// is shared and read-only. It does not allocate.
func (l *lookups) GetPrimary(p *Partition) *Node {
	s := l.snap.Load()
	i, ok := s.index(p)
	if !ok {
		return nil
	}
	if nodes := s.servingAt(i); len(nodes) > 0 {
		return &nodes[0]
	}
	return nil
}

// GetReplicas returns the nodes that serve p besides its primary, in the
// current map. The slice is shared and read-only.
func (l *lookups) GetReplicas(p *Partition) []Node {
	s := l.snap.Load()
	i, ok := s.index(p)
	if !ok {
		return nil
	}
	if nodes := s.servingAt(i); len(nodes) > 0 {
		return nodes[1:]
	}
	return []Node{}
}

// GetNodes returns every node that serves p, primary first, in the current
// map. The slice is shared and read-only.
func (l *lookups) GetNodes(p *Partition) []Node {
	s := l.snap.Load()
	i, ok := s.index(p)
	if !ok {
		return nil
	}
	return s.servingAt(i)
}
