package clusterkit

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// mapBase is what the leader writes the next map version against: the
// fence, the node table of the applied version and the parts to rewrite.
// It is a copy taken under the view's lock; the leader owns it.
type mapBase struct {
	// metaRev and legacyRev are the mod revisions of map/meta and of the
	// format-1 key (0: absent); every leader Txn compares both.
	metaRev, legacyRev int64
	table              map[int]wireSlot
	slotOf             map[string]int
	dirtySlots         []int
	dirtyChunks        map[int]bool
	// full: no format-2 version is applied, every part is written.
	full bool
	// legacy: a format-1 map exists (deleted by the commit that replaces
	// it); keepLegacy: some live member cannot read format 2 yet, so the
	// leader keeps writing format 1.
	legacy, keepLegacy bool
	configFormat       int
	// version is the newest map version seen, applied or not: the next
	// one is above it.
	version int64
	// repair: parts or meta must be rewritten even if the plan is the
	// same (left by a leader that died between Txns, foreign or corrupt
	// values, a format-1 map to migrate).
	repair bool
}

func (v *view) mapBase() mapBase {
	p := v.parts
	b := mapBase{metaRev: p.metaRev, legacyRev: v.legacyRev, table: maps.Clone(p.table), slotOf: maps.Clone(p.slotOf),
		dirtySlots: p.dirtySlots(), dirtyChunks: p.dirtyChunks(), full: p.version == 0,
		legacy: v.legacyRev > 0, configFormat: v.configFormat, version: p.metaVersion}
	if v.assign != nil {
		b.version = max(b.version, v.assign.Version)
	}
	for _, m := range v.members {
		b.keepLegacy = b.keepLegacy || (b.legacy && p.version == 0 && m.MapFormat < mapFormat)
	}
	b.repair = !b.keepLegacy && (b.legacy || p.dirty())
	return b
}

func (b *mapBase) conds(k keys) []clientv3.Cmp {
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k.mapMeta()), "=", b.metaRev),
		clientv3.Compare(clientv3.ModRevision(k.assignment()), "=", b.legacyRev)}
}

// sizedOp is an op and the bytes of its key and value.
type sizedOp struct {
	op clientv3.Op
	n  int
}

func put(key string, v any) (sizedOp, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return sizedOp{}, err
	}
	return sizedOp{clientv3.OpPut(key, string(b)), len(key) + len(b)}, nil
}

// mapPartOps returns the puts of the parts of next that differ from prev
// (the applied map) or must be rewritten (base), tagged next.Version.
func mapPartOps(k keys, b *mapBase, prev, next *assignment) ([]sizedOp, error) {
	var ops []sizedOp
	slots, err := slotTable(b, next)
	if err != nil {
		return nil, err
	}
	for _, s := range slices.Sorted(maps.Keys(slots)) {
		want, cur := slots[s], b.table[s]
		if !b.full && !slices.Contains(b.dirtySlots, s) && cur.ID == want.ID && samePlannedAttrs(cur.Planned, want.Planned) {
			continue
		}
		want.Tag = next.Version
		op, err := put(k.mapNode(s), want)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	slotOf := func(id string) int {
		return b.slotOf[id]
	}
	P := len(next.Partitions)
	for c := range chunkCount(P) {
		lo, hi := chunkRange(c, P)
		if !b.full && prev != nil && !b.dirtyChunks[c] && slices.EqualFunc(prev.Partitions[lo:hi], next.Partitions[lo:hi], samePartition) {
			continue
		}
		w := wireChunk{Tag: next.Version, P: make([][]int64, 0, hi-lo)}
		for _, ps := range next.Partitions[lo:hi] {
			w.P = append(w.P, encodePartition(ps, slotOf))
		}
		op, err := put(k.mapChunk(c), w)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// slotTable returns the node table of next (slot → value, tags unset) and
// points b.slotOf at it: a node keeps its slot while next names it, a
// node next no longer names frees its slot, new nodes take the lowest free
// slots. Slots that were used or dirty and are now free are in the table
// with no ID.
func slotTable(b *mapBase, next *assignment) (map[int]wireSlot, error) {
	planned := map[string]*plannedNode{}
	needed := map[string]bool{}
	for _, pn := range next.Planned {
		c := pn
		c.ID = ""
		planned[pn.ID], needed[pn.ID] = &c, true
	}
	for _, ps := range next.Partitions {
		for _, id := range ps.Target {
			needed[id] = true
		}
		for _, id := range ps.Serving {
			needed[id] = true
		}
		for _, in := range ps.Incoming {
			needed[in.Node] = true
		}
	}
	out := map[int]wireSlot{}
	for s := range b.table {
		out[s] = wireSlot{}
	}
	for _, s := range b.dirtySlots {
		out[s] = wireSlot{}
	}
	slotOf := map[string]int{}
	for id := range needed {
		if s, ok := b.slotOf[id]; ok && !b.full {
			slotOf[id] = s
			out[s] = wireSlot{ID: id, Planned: planned[id]}
		}
	}
	free := 0
	for _, id := range slices.Sorted(maps.Keys(needed)) {
		if _, ok := slotOf[id]; ok {
			continue
		}
		for ; ; free++ {
			if w, ok := out[free]; !ok || w.ID == "" {
				break
			}
		}
		if free >= maxNodeSlots {
			return nil, fmt.Errorf("clusterkit: map names more than %d nodes", maxNodeSlots)
		}
		slotOf[id] = free
		out[free] = wireSlot{ID: id, Planned: planned[id]}
	}
	b.slotOf = slotOf
	return out, nil
}

// samePlannedAttrs compares two planned entries of a slot, every field
// but the ID (the slot's) and with times compared as instants.
func samePlannedAttrs(a, b *plannedNode) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	if !x.AwaySince.Equal(y.AwaySince) {
		return false
	}
	x.ID, y.ID, x.AwaySince, y.AwaySince = "", "", time.Time{}, time.Time{}
	return x == y
}

func samePartition(a, b partitionState) bool {
	return a.Epoch == b.Epoch && slices.Equal(a.Target, b.Target) && slices.Equal(a.Serving, b.Serving) &&
		slices.Equal(a.Incoming, b.Incoming)
}

// packTxns packs the ops of one leader write into Txns of at most
// maxTxnOps operations and maxTxnBytes bytes: the staged ones first, final
// (the commit: meta and what must change with it) last, filled up with as
// many staged ops as fit.
func packTxns(staged, final []sizedOp) [][]clientv3.Op {
	fits := func(txn []sizedOp, op sizedOp) bool {
		n := op.n
		for _, o := range txn {
			n += o.n
		}
		return len(txn) < maxTxnOps && (n <= maxTxnBytes || len(txn) == 0)
	}
	for len(staged) > 0 && fits(final, staged[len(staged)-1]) {
		final = append(final, staged[len(staged)-1])
		staged = staged[:len(staged)-1]
	}
	var txns [][]sizedOp
	for _, op := range staged {
		if len(txns) == 0 || !fits(txns[len(txns)-1], op) {
			txns = append(txns, nil)
		}
		txns[len(txns)-1] = append(txns[len(txns)-1], op)
	}
	txns = append(txns, final)
	out := make([][]clientv3.Op, len(txns))
	for i, t := range txns {
		for _, o := range t {
			out[i] = append(out[i], o.op)
		}
	}
	return out
}
