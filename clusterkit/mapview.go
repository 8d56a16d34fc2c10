package clusterkit

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// errMapIncomplete: a map version cannot be assembled yet because a part it
// needs is staged for a later version and this node never saw the one
// before (it started while a leader was between its Txns, or it received
// only the newest values of a stretch of changes: see restaged).
var errMapIncomplete = errors.New("map version incomplete")

// errPartUnreadable: a part a version needs holds a value that was
// reported (and counted) when it arrived.
var errPartUnreadable = errors.New("map part unreadable")

// mapParts is a follower's copy of the map's parts (mapwire.go): the newest
// value of every part, staged or not, and the node table and chunk tags of
// the version it applied. Only the follow goroutine writes it (under the
// view's lock).
type mapParts struct {
	// metaRev is map/meta's mod revision (the leader's fence), newest
	// meta; pending is the newest meta not applied yet (nil: applied).
	metaRev int64
	metaBad bool // the newest meta is unusable (or deleted)
	pending *wireMeta
	// metaVersion is the newest valid meta's version (applied or not).
	metaVersion int64
	slots       map[int]latestPart[wireSlot]
	chunks      map[int]latestPart[wireChunk]

	// The last commit: the map it built (committed), the version of the
	// map it was built on (baseVersion, 0: none) and the chunks it
	// decoded; the other partitions are the base map's. (A version, not
	// the map: the base map is not kept alive.)
	committed   *assignment
	baseVersion int64
	decoded     []int

	// What the applied version used.
	version  int64
	table    map[int]wireSlot // slot → committed value (IDs only for used slots)
	slotOf   map[string]int
	chunkTag []int64
	// served lists, per node, the partitions whose serving set in the
	// applied version names it (unordered), so that a node whose record
	// changed costs its partitions, not a pass over the map.
	served map[string][]int32
}

// latestPart is the newest value of one part (v nil: unreadable) and the
// revision that wrote it.
type latestPart[T any] struct {
	tag, rev int64
	v        *T
}

func newMapParts(partitions int) *mapParts {
	return &mapParts{slots: map[int]latestPart[wireSlot]{}, chunks: map[int]latestPart[wireChunk]{},
		table: map[int]wireSlot{}, slotOf: map[string]int{}, chunkTag: make([]int64, chunkCount(partitions))}
}

// putPart records the newest value of a part key (below map/, meta
// aside), written at revision rev. It returns the key kind and an error
// for a value it cannot use; a put tagged at or below the applied version
// is foreign (the leader always tags above it) and unusable too.
func (m *mapParts) putPart(rel string, value []byte, rev int64, partitions int) (string, error) {
	if s, ok := strings.CutPrefix(rel, "n/"); ok {
		return "map_node", putLatest(m.slots, s, maxNodeSlots, m.version, rev, func(int) (*wireSlot, int64, error) {
			w, err := decodeSlot(value)
			if err != nil {
				return nil, 0, err
			}
			return w, w.Tag, nil
		})
	}
	if s, ok := strings.CutPrefix(rel, "p/"); ok {
		return "map_chunk", putLatest(m.chunks, s, len(m.chunkTag), m.version, rev, func(c int) (*wireChunk, int64, error) {
			w, err := decodeChunk(value, c, partitions)
			if err != nil {
				return nil, 0, err
			}
			return w, w.Tag, nil
		})
	}
	return "map", fmt.Errorf("unknown map key %q", rel)
}

// putLatest records the newest value of part index (a decimal below
// limit) of one kind, decoded by decode; an unusable value is recorded as
// unreadable.
func putLatest[T any](latest map[int]latestPart[T], index string, limit int, applied, rev int64, decode func(i int) (*T, int64, error)) error {
	i, err := strconv.Atoi(index)
	if err != nil || i < 0 || i >= limit {
		return fmt.Errorf("bad part index %q", index)
	}
	v, tag, err := decode(i)
	if err == nil && applied > 0 && tag <= applied {
		err = fmt.Errorf("tag %d not above applied version %d", tag, applied)
	}
	if err != nil {
		latest[i] = latestPart[T]{rev: rev}
		return err
	}
	latest[i] = latestPart[T]{tag: tag, rev: rev, v: v}
	return nil
}

// restaged reports whether a part's newest value is staged for a version
// after V and was written after V's meta (metaRev): this node then did not
// see the state at V's commit, and the value V had for the part, if V
// changed it, was overwritten before it arrived (a coalesced batch, or the
// net difference after a compaction). Written before V's meta, it is the
// leftover of a leader that died between its Txns: V keeps the applied
// value (the next leader rewrites it).
func restaged[T any](lat latestPart[T], V, metaRev int64) bool {
	return lat.v != nil && lat.tag > V && lat.rev > metaRev
}

// commit assembles version meta from the parts on top of old (the applied
// map, nil before the first) and, when it succeeds, makes it the applied
// version. On error nothing changes.
func (m *mapParts) commit(meta *wireMeta, old *assignment) (*assignment, error) {
	V := meta.Version
	table, slotOf, planned, err := m.nodeTable(V, old)
	if err != nil {
		return nil, err
	}
	name := func(s int64) (string, bool) {
		w, ok := table[int(s)]
		return w.ID, ok && s >= 0 && s < maxNodeSlots && w.ID != ""
	}
	next := &assignment{Version: V, Maintenance: meta.Maintenance, Served: meta.Served, Planned: planned,
		Partitions: make([]partitionState, meta.Partitions)}
	if old != nil {
		copy(next.Partitions, old.Partitions)
	}
	tags := slices.Clone(m.chunkTag)
	var decoded []int
	for c := range tags {
		lat := m.chunks[c]
		switch {
		case restaged(lat, V, m.metaRev):
			return nil, errMapIncomplete
		case lat.v != nil && lat.tag <= V:
			if lat.tag == tags[c] && old != nil {
				continue
			}
			lo, _ := chunkRange(c, meta.Partitions)
			for i, a := range lat.v.P {
				ps, err := decodePartition(a, name)
				if err != nil {
					return nil, fmt.Errorf("chunk %d, partition %d: %w", c, lo+i, err)
				}
				next.Partitions[lo+i] = ps
			}
			tags[c] = lat.tag
			decoded = append(decoded, c)
		case tags[c] > 0 && old != nil:
		case lat.v == nil && m.hasChunk(c):
			return nil, fmt.Errorf("chunk %d: %w", c, errPartUnreadable)
		default:
			return nil, errMapIncomplete
		}
	}
	m.version, m.table, m.slotOf, m.chunkTag, m.pending = V, table, slotOf, tags, nil
	m.indexServing(old, next, decoded)
	m.committed, m.baseVersion, m.decoded = next, 0, decoded
	if old != nil {
		m.baseVersion = old.Version
	}
	m.forgetCommitted()
	return next, nil
}

// indexServing updates served from the last commit's map (old) to next,
// whose partitions differ from old's only in the chunks decoded; it
// indexes next whole when old is not the last commit's.
func (m *mapParts) indexServing(old, next *assignment, decoded []int) {
	if old == nil || old != m.committed || m.served == nil {
		m.served = map[string][]int32{}
		for p, ps := range next.Partitions {
			for _, id := range ps.Serving {
				m.served[id] = append(m.served[id], int32(p))
			}
		}
		return
	}
	for _, c := range decoded {
		lo, hi := chunkRange(c, len(next.Partitions))
		for p := lo; p < hi; p++ {
			was, now := old.Partitions[p].Serving, next.Partitions[p].Serving
			for _, id := range was {
				if !slices.Contains(now, id) {
					m.unserve(id, int32(p))
				}
			}
			for _, id := range now {
				if !slices.Contains(was, id) {
					m.served[id] = append(m.served[id], int32(p))
				}
			}
		}
	}
}

// unserve drops partition p from node id's list.
func (m *mapParts) unserve(id string, p int32) {
	list := m.served[id]
	i := slices.Index(list, p)
	if i < 0 {
		return
	}
	list[i] = list[len(list)-1]
	if list = list[:len(list)-1]; len(list) == 0 {
		delete(m.served, id)
		return
	}
	m.served[id] = list
}

// servingAny returns, in index order, the partitions of the applied
// version whose serving sets name a node of ids.
func (m *mapParts) servingAny(ids map[string]bool) []int {
	var out []int
	for id := range ids {
		for _, p := range m.served[id] {
			out = append(out, int(p))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// nodeTable assembles the node table of version V: each slot's value,
// the slot of each node it names, and the planned nodes sorted by ID. It
// starts from the applied version's (old is its map; they are never
// modified) and changes only the slots whose parts arrived since, so a
// version costs O(N) copying at most, not a sort of every node, and one
// that changed only chunks shares them outright.
func (m *mapParts) nodeTable(V int64, old *assignment) (map[int]wireSlot, map[string]int, []plannedNode, error) {
	based := old != nil && m.version > 0 && old.Version == m.version
	if based && len(m.slots) == 0 {
		return m.table, m.slotOf, old.Planned, nil
	}
	changed := map[int]wireSlot{}
	for i, lat := range m.slots {
		switch _, ok := m.table[i]; {
		case restaged(lat, V, m.metaRev):
			return nil, nil, nil, errMapIncomplete
		case lat.v != nil && lat.tag <= V:
			changed[i] = *lat.v
		case ok: // staged for a later version, or unreadable: V keeps the applied value
		case lat.v == nil:
			return nil, nil, nil, fmt.Errorf("node slot %d: %w", i, errPartUnreadable)
		default:
			return nil, nil, nil, errMapIncomplete
		}
	}
	if !based {
		table := maps.Clone(m.table)
		maps.Copy(table, changed)
		slotOf, planned := indexNodeTable(table)
		return table, slotOf, planned, nil
	}
	table, slotOf := maps.Clone(m.table), maps.Clone(m.slotOf)
	gone := map[string]bool{}
	var added []plannedNode
	for i, w := range changed {
		// A node may move between slots within one version: its old slot
		// drops it only while it still points there.
		cur := m.table[i]
		if cur.ID != "" && slotOf[cur.ID] == i {
			delete(slotOf, cur.ID)
		}
		if w.ID != "" {
			slotOf[w.ID] = i
		}
		if cur.Planned != nil {
			gone[cur.ID] = true
		}
		if table[i] = w; w.Planned != nil {
			added = append(added, *w.Planned)
		}
	}
	slices.SortFunc(added, comparePlanned)
	return table, slotOf, mergePlanned(old.Planned, gone, added), nil
}

// indexNodeTable returns the slot of each node the table names and its
// planned nodes sorted by ID, from the slot values alone (the first
// version of the map in parts).
func indexNodeTable(table map[int]wireSlot) (map[string]int, []plannedNode) {
	slotOf := make(map[string]int, len(table))
	var planned []plannedNode
	for i, w := range table {
		if w.ID == "" {
			continue
		}
		slotOf[w.ID] = i
		if w.Planned != nil {
			planned = append(planned, *w.Planned)
		}
	}
	slices.SortFunc(planned, comparePlanned)
	return slotOf, planned
}

// comparePlanned orders planned nodes by ID.
func comparePlanned(a, b plannedNode) int { return strings.Compare(a.ID, b.ID) }

// mergePlanned returns a without the nodes of gone, merged with b (both
// sorted by ID) into a new list; a is not modified.
func mergePlanned(a []plannedNode, gone map[string]bool, b []plannedNode) []plannedNode {
	out := make([]plannedNode, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(a) > 0 && gone[a[0].ID]:
			a = a[1:]
		case len(a) == 0 || len(b) > 0 && comparePlanned(b[0], a[0]) < 0:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a = append(out, a[0]), a[1:]
		}
	}
	return out
}

// forgetCommitted drops the newest values of the parts the applied
// version holds (tagged at or below it): the map has them, and the next
// commit keeps its entry for a part absent here. Staged and unreadable
// parts stay.
func (m *mapParts) forgetCommitted() {
	for c, lat := range m.chunks {
		if lat.v != nil && lat.tag <= m.version {
			delete(m.chunks, c)
		}
	}
	for i, lat := range m.slots {
		if lat.v != nil && lat.tag <= m.version {
			delete(m.slots, i)
		}
	}
}

// changedChunks returns the chunks in which a may differ from prev: none
// when a is prev, else those the last commit decoded when it built a on
// top of prev (the map the view held before, whose version it recorded);
// ok false when a is not that commit's (a format-1 map, the first one).
func (m *mapParts) changedChunks(a, prev *assignment) (chunks []int, ok bool) {
	switch {
	case a == nil || prev == nil || m.committed == nil:
		return nil, false
	case a == prev && m.committed == a: // the same map: nothing changed
		return nil, true
	case m.committed == a && m.baseVersion > 0 && m.baseVersion == prev.Version:
		return m.decoded, true
	}
	return nil, false
}

func (m *mapParts) hasChunk(c int) bool { _, ok := m.chunks[c]; return ok }

// dirty reports whether a part's newest value is unusable or tagged above
// the applied version, or the newest meta is not applied: the leader then
// rewrites those parts (dirtySlots, dirtyChunks) with its next version.
func (m *mapParts) dirty() bool {
	return m.metaBad || m.pending != nil || m.metaVersion > m.version || len(m.dirtySlots()) > 0 || len(m.dirtyChunks()) > 0
}

func (m *mapParts) dirtySlots() []int {
	var out []int
	for i, lat := range m.slots {
		if lat.v == nil || lat.tag > m.version {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

func (m *mapParts) dirtyChunks() map[int]bool {
	out := map[int]bool{}
	for c, lat := range m.chunks {
		if lat.v == nil || lat.tag > m.version {
			out[c] = true
		}
	}
	return out
}

// applyMapPart applies a change of a key below map/ (rel is the rest).
func (d decoder) applyMapPart(v *view, rel string, e watcher.Event) {
	m := v.parts
	if rel == "meta" {
		m.metaRev, m.metaBad = e.ModRevision, true
		if e.Type != watcher.Put {
			m.metaRev = 0
			d.bad("map_meta", e.Key, errors.New("meta deleted"))
			return
		}
		meta, err := decodeMeta(e.Value, d.partitions)
		if err != nil {
			d.bad("map_meta", e.Key, err)
			return
		}
		m.pending, m.metaVersion, m.metaBad = meta, max(m.metaVersion, meta.Version), false
		return
	}
	if e.Type != watcher.Put {
		// Parts are never deleted: a foreign delete leaves the part
		// unreadable until the leader rewrites it.
		e.Value = []byte("deleted")
	}
	if kind, err := m.putPart(rel, e.Value, e.ModRevision, d.partitions); err != nil {
		d.bad(kind, e.Key, err)
	}
}

// commitMap applies the pending meta's version when its parts allow.
func (d decoder) commitMap(v *view) {
	meta := v.parts.pending
	old := v.assign
	if v.parts.version == 0 {
		old = nil // a map of format 1 is not a base for the parts
	}
	a, err := v.parts.commit(meta, old)
	switch {
	case errors.Is(err, errMapIncomplete) || errors.Is(err, errPartUnreadable):
		d.log.Debug("map version not applicable yet", zap.Int64("version", meta.Version), zapErr(err))
	case err != nil:
		d.bad("map", d.keys.mapMeta(), fmt.Errorf("version %d: %w", meta.Version, err))
		v.parts.pending = nil // a later write brings a new version
	default:
		v.assign = a
	}
}

// applyLegacy applies the single-key map of format 1; a cluster reads it
// until its leader rewrites it as parts (see the leader's migration).
func (d decoder) applyLegacy(v *view, e watcher.Event) {
	if e.Type != watcher.Put {
		v.legacyRev = 0
		return
	}
	v.legacyRev = e.ModRevision
	if v.parts.version > 0 {
		d.bad("assignment", e.Key, errors.New("format-1 map written after the map moved to format 2"))
		return
	}
	a, err := unmarshalAssignment(e.Value)
	if err == nil && len(a.Partitions) != d.partitions {
		err = fmt.Errorf("%d partitions, config says %d", len(a.Partitions), d.partitions)
	}
	if err != nil {
		d.bad("assignment", e.Key, err)
		return
	}
	v.assign = a
}

// checkMemberAddr checks a member record's advertised address: host:port.
func checkMemberAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("addr %q: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return fmt.Errorf("addr %q: want host:port", addr)
	}
	return nil
}
