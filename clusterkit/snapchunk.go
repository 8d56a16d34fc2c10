package clusterkit

// snapChunk holds a snapshot's entries for chunkPartitions consecutive
// partitions (the same partitions as one chunk of the map in etcd). A
// chunk is immutable once its snapshot is published: the next snapshot
// shares it while none of its partitions changed, and copies it (one
// chunk, not the whole map) before changing one. So a new map version
// costs a copy of the chunk pointers plus the chunks it touched.
type snapChunk struct {
	partitions [chunkPartitions]Partition
	// serving[i] is the serving nodes of the chunk's i-th partition
	// (primary first; empty, not nil, when none serves), shared with the
	// next chunk while the partition and its nodes' records are unchanged.
	serving [chunkPartitions][]Node
	// isPrimary and isReplica are this node's roles.
	isPrimary, isReplica [chunkPartitions]bool
	// liveOf is the number of live (not offline) serving nodes.
	liveOf [chunkPartitions]uint8
}

// chunkOf splits partition index p into its chunk and its offset there.
func chunkOf(p int) (c, i int) {
	return int(uint(p) / chunkPartitions), int(uint(p) % chunkPartitions)
}

// part returns partition p's entry (0 ≤ p < s.count).
func (s *snapshot) part(p int) *Partition {
	c, i := chunkOf(p)
	return &s.chunks[c].partitions[i]
}

// servingAt returns partition p's serving nodes, primary first.
func (s *snapshot) servingAt(p int) []Node {
	c, i := chunkOf(p)
	return s.chunks[c].serving[i]
}

// primaryAt and replicaAt report this node's role in partition p.
func (s *snapshot) primaryAt(p int) bool {
	c, i := chunkOf(p)
	return s.chunks[c].isPrimary[i]
}

func (s *snapshot) replicaAt(p int) bool {
	c, i := chunkOf(p)
	return s.chunks[c].isReplica[i]
}

// liveAt returns partition p's number of live serving nodes.
func (s *snapshot) liveAt(p int) uint8 {
	c, i := chunkOf(p)
	return s.chunks[c].liveOf[i]
}

// partitionList returns a copy of every partition entry, in index order
// (for the HTTP views and GetCluster, which hand out a slice).
func (s *snapshot) partitionList() []Partition {
	out := make([]Partition, s.count)
	for p := range out {
		out[p] = *s.part(p)
	}
	return out
}

// chunkWriter gives a snapshot under construction writable chunks: the
// first write to a chunk it shares with another snapshot copies it. Only
// the goroutine building the snapshot uses it.
type chunkWriter struct {
	s     *snapshot
	owned map[int]bool
}

// chunk returns chunk c of w's snapshot, copied first if it is shared.
func (w *chunkWriter) chunk(c int) *snapChunk {
	if !w.owned[c] {
		cp := new(snapChunk)
		if old := w.s.chunks[c]; old != nil {
			*cp = *old
		}
		w.s.chunks[c] = cp
		if w.owned == nil {
			w.owned = map[int]bool{}
		}
		w.owned[c] = true
	}
	return w.s.chunks[c]
}
