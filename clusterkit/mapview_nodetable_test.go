package clusterkit

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestNodeTableEditsMatchRebuild: over random versions whose slots are
// taken, freed, re-planned or swapped between nodes, the node table a
// version edits from the one before equals the table rebuilt from every
// slot value; the version before is left unchanged; a version without
// slot parts shares it.
func TestNodeTableEditsMatchRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := newMapParts(64)
	var old *assignment
	for V := int64(1); V < 2000; V++ {
		if old != nil && rng.IntN(4) == 0 {
			table, slotOf, planned, err := m.nodeTable(V, old)
			if err != nil || !reflect.DeepEqual(table, m.table) || !reflect.DeepEqual(slotOf, m.slotOf) || !reflect.DeepEqual(planned, old.Planned) {
				t.Fatalf("v%d: a version without slot parts changed the table (err %v)", V, err)
			}
		}
		// Random slot values, then every node kept in at most one slot,
		// as the leader writes them.
		full := maps.Clone(m.table)
		m.slots = map[int]latestPart[wireSlot]{}
		for range 1 + rng.IntN(6) {
			i, w := rng.IntN(30), wireSlot{Tag: V}
			if rng.IntN(5) > 0 {
				w.ID = fmt.Sprintf("n%02d", rng.IntN(30))
				if rng.IntN(4) > 0 {
					w.Planned = &plannedNode{ID: w.ID, Weight: float64(rng.IntN(3) + 1), Incarnation: V}
				}
			}
			full[i] = w
			m.slots[i] = latestPart[wireSlot]{tag: V, v: &w}
		}
		seen := map[string]bool{}
		for i := range 30 {
			if w, ok := full[i]; ok && w.ID != "" {
				if seen[w.ID] {
					free := wireSlot{Tag: V}
					full[i], m.slots[i] = free, latestPart[wireSlot]{tag: V, v: &free}
				}
				seen[w.ID] = true
			}
		}
		wantSlotOf, wantPlanned := indexNodeTable(full)
		wantTable := full

		var beforePlanned []plannedNode
		if old != nil {
			beforePlanned = append([]plannedNode(nil), old.Planned...)
		}
		beforeTable, beforeSlotOf := maps.Clone(m.table), maps.Clone(m.slotOf)
		table, slotOf, planned, err := m.nodeTable(V, old)
		if err != nil {
			t.Fatalf("v%d: %v", V, err)
		}
		if !reflect.DeepEqual(table, wantTable) || !reflect.DeepEqual(slotOf, wantSlotOf) || !reflect.DeepEqual(planned, wantPlanned) {
			t.Fatalf("v%d: edited table differs from rebuild:\nslotOf %v\nwant   %v\nplanned %v\nwant    %v", V, slotOf, wantSlotOf, planned, wantPlanned)
		}
		if old != nil && (!reflect.DeepEqual(old.Planned, beforePlanned) || !reflect.DeepEqual(m.table, beforeTable) || !reflect.DeepEqual(m.slotOf, beforeSlotOf)) {
			t.Fatalf("v%d: the version before changed", V)
		}
		m.version, m.table, m.slotOf, m.slots = V, table, slotOf, map[int]latestPart[wireSlot]{}
		old = &assignment{Version: V, Planned: planned}
	}
}
