package clusterkit

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// The partition map in etcd (format 2) is split into parts so that a change
// costs what it changed:
//
//	map/meta      the commit record: map version, partition count, chunk
//	              size, maintenance, served control requests
//	map/n/<slot>  one node of the map's node table: its ID and, when it is
//	              planned, its placement attributes
//	map/p/<chunk> chunkPartitions consecutive partitions, nodes named by
//	              slot
//
// Every part carries the map version it was written for (its tag). The
// leader writes the parts of version V (only those that changed) and then
// map/meta of version V, in one fenced Txn when they fit and otherwise in
// several, meta last. A follower applies version V when its meta arrives:
// every part whose newest value is tagged ≤ V is part of V; a part tagged
// > V is staged for a later version (the follower keeps the value it
// committed). Parts are never deleted, a freed node slot is rewritten
// without an ID. A leader rewrites every part tagged above the committed
// version (left by a leader that died between its Txns) before it commits
// the next one, so a part tagged ≤ V is always V's.
const (
	mapFormat = 2
	// chunkPartitions is the number of partitions per chunk: small, so a
	// change of a few partitions delivers a few hundred bytes each.
	chunkPartitions = 8
	// maxTxnOps is etcd's default limit of operations per Txn list.
	maxTxnOps = 128
	// maxTxnBytes bounds the keys and values of one leader Txn (etcd's
	// request limit is 1.5 MiB; the scale target is 512 KB).
	maxTxnBytes = 384 << 10
	// maxNodeSlots bounds the node table: a slot key beyond it is foreign.
	maxNodeSlots = 1 << 16
)

func (k keys) mapPrefix() string         { return k.root + "map/" }
func (k keys) mapMeta() string           { return k.mapPrefix() + "meta" }
func (k keys) mapNodePrefix() string     { return k.mapPrefix() + "n/" }
func (k keys) mapChunkPrefix() string    { return k.mapPrefix() + "p/" }
func (k keys) mapNode(slot int) string   { return k.mapNodePrefix() + strconv.Itoa(slot) }
func (k keys) mapChunk(chunk int) string { return k.mapChunkPrefix() + strconv.Itoa(chunk) }
func chunkCount(partitions int) int      { return (partitions + chunkPartitions - 1) / chunkPartitions }
func chunkRange(c, partitions int) (int, int) {
	return c * chunkPartitions, min(partitions, (c+1)*chunkPartitions)
}

// wireMeta is the value of map/meta.
type wireMeta struct {
	Format      int                      `json:"f"`
	Version     int64                    `json:"v"`
	Partitions  int                      `json:"pc"`
	Chunk       int                      `json:"cs"`
	Maintenance *maintenanceState        `json:"maint,omitempty"`
	Served      map[controlAction]string `json:"served,omitempty"`
}

// wireSlot is the value of map/n/<slot>: ID "" is a free slot.
type wireSlot struct {
	Tag     int64        `json:"v"`
	ID      string       `json:"id,omitempty"`
	Planned *plannedNode `json:"pn,omitempty"`
}

// wireChunk is the value of map/p/<chunk>. Each partition is one array:
// epoch, len(target), target slots, len(serving) or -1 when serving equals
// target, serving slots, then (slot, since) per incoming node.
type wireChunk struct {
	Tag int64     `json:"v"`
	P   [][]int64 `json:"p"`
}

func (m *wireMeta) check(partitions int) error {
	switch {
	case m.Format != mapFormat:
		return fmt.Errorf("map format %d, this node knows %d", m.Format, mapFormat)
	case m.Partitions != partitions:
		return fmt.Errorf("map of %d partitions, config says %d", m.Partitions, partitions)
	case m.Chunk != chunkPartitions:
		return fmt.Errorf("map chunk size %d, this node knows %d", m.Chunk, chunkPartitions)
	case m.Version < 1:
		return fmt.Errorf("map version %d", m.Version)
	}
	return nil
}

func decodeMeta(b []byte, partitions int) (*wireMeta, error) {
	var m wireMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if err := m.check(partitions); err != nil {
		return nil, err
	}
	return &m, nil
}

func decodeSlot(b []byte) (*wireSlot, error) {
	var s wireSlot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if s.Tag < 1 {
		return nil, fmt.Errorf("tag %d", s.Tag)
	}
	if s.Planned != nil {
		s.Planned.ID = s.ID
		if s.ID == "" {
			return nil, fmt.Errorf("planned attributes on a free slot")
		}
	}
	return &s, nil
}

// decodeChunk decodes chunk c's value and checks its shape (not its slots:
// they are resolved when a version commits).
func decodeChunk(b []byte, c, partitions int) (*wireChunk, error) {
	var w wireChunk
	if err := unmarshalChunk(b, &w); err != nil {
		return nil, err
	}
	lo, hi := chunkRange(c, partitions)
	switch {
	case w.Tag < 1:
		return nil, fmt.Errorf("tag %d", w.Tag)
	case len(w.P) != hi-lo:
		return nil, fmt.Errorf("%d partitions, chunk %d has %d", len(w.P), c, hi-lo)
	}
	for i, p := range w.P {
		if err := checkPartitionShape(p); err != nil {
			return nil, fmt.Errorf("partition %d: %w", lo+i, err)
		}
	}
	return &w, nil
}

// checkPartitionShape returns the error decodePartition returns for a
// (with every slot known), without building the partition.
func checkPartitionShape(a []int64) error {
	list := func(n int64) error {
		if n < 0 || n > int64(len(a)) {
			return fmt.Errorf("bad length %d", n)
		}
		a = a[n:]
		return nil
	}
	if len(a) < 3 || a[0] < 0 {
		return fmt.Errorf("malformed partition %v", a)
	}
	n := a[1]
	a = a[2:]
	if err := list(n); err != nil {
		return err
	}
	if len(a) == 0 {
		return fmt.Errorf("truncated partition")
	}
	n, a = a[0], a[1:]
	if n != -1 {
		if err := list(n); err != nil {
			return err
		}
	}
	if len(a)%2 != 0 {
		return fmt.Errorf("odd incoming list")
	}
	return nil
}

// encodePartition is the wire array of ps; slot gives a node's slot.
func encodePartition(ps partitionState, slot func(string) int) []int64 {
	out := make([]int64, 0, 3+len(ps.Target)+len(ps.Serving)+2*len(ps.Incoming))
	out = append(out, int64(ps.Epoch), int64(len(ps.Target)))
	for _, id := range ps.Target {
		out = append(out, int64(slot(id)))
	}
	if slices.Equal(ps.Serving, ps.Target) {
		out = append(out, -1)
	} else {
		out = append(out, int64(len(ps.Serving)))
		for _, id := range ps.Serving {
			out = append(out, int64(slot(id)))
		}
	}
	for _, in := range ps.Incoming {
		out = append(out, int64(slot(in.Node)), in.Since)
	}
	return out
}

// decodePartition is the inverse of encodePartition; name resolves a slot.
func decodePartition(a []int64, name func(int64) (string, bool)) (partitionState, error) {
	var ps partitionState
	names := func(n int64) ([]string, error) {
		if n < 0 || n > int64(len(a)) {
			return nil, fmt.Errorf("bad length %d", n)
		}
		if int64(len(a)) < n {
			return nil, fmt.Errorf("truncated")
		}
		out := make([]string, n)
		for i := range out {
			id, ok := name(a[i])
			if !ok {
				return nil, fmt.Errorf("unknown node slot %d", a[i])
			}
			out[i] = id
		}
		a = a[n:]
		return out, nil
	}
	if len(a) < 3 || a[0] < 0 {
		return ps, fmt.Errorf("malformed partition %v", a)
	}
	ps.Epoch = uint64(a[0])
	n := a[1]
	a = a[2:]
	var err error
	if ps.Target, err = names(n); err != nil {
		return ps, err
	}
	if len(a) == 0 {
		return ps, fmt.Errorf("truncated partition")
	}
	n, a = a[0], a[1:]
	if n == -1 {
		ps.Serving = ps.Target // read-only, like every slice of a map
	} else if ps.Serving, err = names(n); err != nil {
		return ps, err
	}
	if len(a)%2 != 0 {
		return ps, fmt.Errorf("odd incoming list")
	}
	for i := 0; i < len(a); i += 2 {
		id, ok := name(a[i])
		if !ok {
			return ps, fmt.Errorf("unknown node slot %d", a[i])
		}
		ps.Incoming = append(ps.Incoming, incoming{Node: id, Since: a[i+1]})
	}
	return ps, nil
}
