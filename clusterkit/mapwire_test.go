package clusterkit

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// testMap returns a map of P partitions over n nodes, RF 3, version v.
func testMap(P, n int, v int64) *assignment {
	a := &assignment{Version: v, Partitions: make([]partitionState, P)}
	for i := range n {
		a.Planned = append(a.Planned, plannedNode{ID: fmt.Sprintf("n%03d", i), Weight: 1, Incarnation: int64(i + 1)})
	}
	for p := range P {
		t := []string{a.Planned[p%n].ID, a.Planned[(p+1)%n].ID, a.Planned[(p+2)%n].ID}
		a.Partitions[p] = partitionState{Target: t, Serving: append([]string(nil), t...), Epoch: uint64(p%5 + 1)}
	}
	return a
}

// follow applies the puts of txns to m (as a watcher delivers them, in
// order) and commits at every meta; it returns the last applied map.
func follow(t testing.TB, k keys, m *mapParts, old *assignment, txns [][]clientv3.Op, P int) *assignment {
	t.Helper()
	for _, ops := range txns {
		var meta *wireMeta
		for _, op := range ops {
			key, val := string(op.KeyBytes()), op.ValueBytes()
			rel, ok := strings.CutPrefix(key, k.mapPrefix())
			if !ok {
				continue
			}
			if rel == "meta" {
				var err error
				if meta, err = decodeMeta(val, P); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := m.putPart(rel, val, P); err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
		}
		if meta != nil { // a Txn's events arrive in one batch, applied together
			a, err := m.commit(meta, old)
			if err != nil {
				t.Fatalf("commit %d: %v", meta.Version, err)
			}
			old = a
		}
	}
	return old
}

func writeTxns(t *testing.T, k keys, v *view, next *assignment) [][]clientv3.Op {
	t.Helper()
	b := v.mapBase()
	txns, err := writeOps(k, reconcileOutput{assign: next}, v.assign, &b, clusterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, ops := range txns {
		if len(ops) > maxTxnOps {
			t.Fatalf("txn %d has %d ops", i, len(ops))
		}
	}
	return txns
}

// newTestView returns a view of P partitions whose config is of format 2.
func newTestView(P int) *view {
	v := newView(P)
	v.configFormat = mapFormat
	return v
}

func TestMapPartsRoundTripAndDelta(t *testing.T) {
	const P = 1024
	k := newKeys("t")
	v := newTestView(P)
	first := testMap(P, 10, 1)
	first.Maintenance = &maintenanceState{Reason: "r", Since: time.Unix(5, 0).UTC()}
	txns := writeTxns(t, k, v, first)
	if len(txns) < 2 {
		t.Fatalf("a whole map of %d partitions in %d txn(s)", P, len(txns))
	}
	got := follow(t, k, v.parts, nil, txns, P)
	if !reflect.DeepEqual(got, first) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got.Planned, first.Planned)
	}
	v.assign = got

	// One partition changes: one chunk (and the node slot of a new node).
	next := *got
	next.Version = 2
	next.Partitions = append([]partitionState(nil), got.Partitions...)
	next.Planned = append(append([]plannedNode(nil), got.Planned...), plannedNode{ID: "zz", Weight: 1})
	next.Partitions[77] = partitionState{Target: []string{"zz", "n001", "n002"}, Serving: []string{"n001", "n002"},
		Incoming: []incoming{{Node: "zz", Since: 2}}, Epoch: 9}
	txns = writeTxns(t, k, v, &next)
	if len(txns) != 1 || len(txns[0]) != 3 {
		t.Fatalf("a one-partition change took %d txns, %v ops", len(txns), len(txns[0]))
	}
	got = follow(t, k, v.parts, got, txns, P)
	if !reflect.DeepEqual(got, &next) {
		t.Fatalf("delta: got %+v want %+v", got.Partitions[77], next.Partitions[77])
	}
}

// A node that starts while a leader is between its Txns waits for the
// commit; one that applied the previous version keeps it meanwhile.
func TestMapPartsStagedVersion(t *testing.T) {
	const P = 1024
	k := newKeys("t")
	v := newTestView(P)
	first := testMap(P, 5, 1)
	v.assign = follow(t, k, v.parts, nil, writeTxns(t, k, v, first), P)
	next := testMap(P, 6, 2) // a reshuffle: more than one Txn
	txns := writeTxns(t, k, v, next)
	if len(txns) < 2 {
		t.Fatalf("reshuffle in %d txn", len(txns))
	}
	staged := txns[:len(txns)-1]
	// The running follower: staged parts change nothing.
	follow(t, k, v.parts, v.assign, staged, P)
	if v.parts.version != 1 || !v.parts.dirty() {
		t.Fatalf("after staging: version %d, dirty %v", v.parts.version, v.parts.dirty())
	}
	// A fresh follower that reads etcd now: parts of version 2 with the
	// meta of version 1.
	fresh := newMapParts(P)
	for _, ops := range append(append([][]clientv3.Op(nil), writeTxns(t, k, newView(P), first)...), staged...) {
		for _, op := range ops {
			if rel, ok := strings.CutPrefix(string(op.KeyBytes()), k.mapPrefix()); ok && rel != "meta" {
				if _, err := fresh.putPart(rel, op.ValueBytes(), P); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	meta1 := &wireMeta{Format: mapFormat, Version: 1, Partitions: P, Chunk: chunkPartitions}
	if _, err := fresh.commit(meta1, nil); err == nil {
		t.Fatal("a fresh follower assembled version 1 from parts of version 2")
	}
	// The commit.
	got := follow(t, k, v.parts, v.assign, txns[len(txns)-1:], P)
	if !reflect.DeepEqual(got, next) {
		t.Fatal("version 2 after its commit differs")
	}
}

func TestPackTxnsLimits(t *testing.T) {
	var staged []sizedOp
	for i := range 300 {
		staged = append(staged, sizedOp{clientv3.OpPut(fmt.Sprint(i), "x"), 10_000})
	}
	final := []sizedOp{{clientv3.OpPut("meta", "m"), 10}}
	txns := packTxns(staged, final)
	n := 0
	for _, ops := range txns {
		if len(ops) > maxTxnOps || len(ops)*10_000 > maxTxnBytes+10_000 {
			t.Fatalf("txn of %d ops", len(ops))
		}
		n += len(ops)
	}
	if n != 301 || string(txns[len(txns)-1][0].KeyBytes()) != "meta" {
		t.Fatalf("%d ops; last txn starts with %s", n, txns[len(txns)-1][0].KeyBytes())
	}
}
