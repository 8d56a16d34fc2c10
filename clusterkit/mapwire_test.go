package clusterkit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
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

// testRevision numbers the Txns the tests' followers apply, as etcd's
// revisions would.
var testRevision atomic.Int64

// follow applies the puts of txns to m (as a watcher delivers them, in
// order, each Txn at a revision of its own) and commits at every meta; it
// returns the last applied map.
func follow(t testing.TB, k keys, m *mapParts, old *assignment, txns [][]clientv3.Op, P int) *assignment {
	t.Helper()
	for _, ops := range txns {
		var meta *wireMeta
		rev := testRevision.Add(1)
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
				m.metaRev = rev
				continue
			}
			if _, err := m.putPart(rel, val, rev, P); err != nil {
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
				if _, err := fresh.putPart(rel, op.ValueBytes(), testRevision.Add(1), P); err != nil {
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

// A follower that receives a version's parts and meta together with parts
// already staged for the next version (a coalesced batch, or the net
// difference after a compaction: only each part's newest value) cannot
// assemble that version, whose values of the restaged parts it never saw:
// it waits for the next commit instead of serving a map that mixes the
// version before with the one after. Both kinds of part: chunks (version
// 3 moves every partition) and node slots (version 3 reweighs more nodes
// than one Txn holds).
func TestMapPartsRestagedBeforeSeen(t *testing.T) {
	reweighed := func(a *assignment, v int64, w float64) *assignment {
		out := testMap(len(a.Partitions), len(a.Planned), v)
		for i := range out.Planned {
			out.Planned[i].Weight = w
		}
		return out
	}
	for _, tt := range []struct {
		name          string
		P, n          int
		second, third func(first *assignment) *assignment
	}{
		{name: "chunks", P: 1024, n: 5,
			second: func(*assignment) *assignment { return testMap(1024, 6, 2) },
			third:  func(*assignment) *assignment { return rotatedMap(testMap(1024, 6, 2), 3) }},
		{name: "slots", P: 64, n: 300,
			second: func(a *assignment) *assignment { return reweighed(a, 2, 2) },
			third:  func(a *assignment) *assignment { return reweighed(a, 3, 3) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newKeys("t")
			first := testMap(tt.P, tt.n, 1)
			second, third := tt.second(first), tt.third(first)
			follower, leader := newTestView(tt.P), newTestView(tt.P)
			follower.assign = follow(t, k, follower.parts, nil, writeTxns(t, k, follower, first), tt.P)
			leader.assign = follow(t, k, leader.parts, nil, writeTxns(t, k, leader, first), tt.P)
			txns2 := writeTxns(t, k, leader, second)
			leader.assign = follow(t, k, leader.parts, leader.assign, txns2, tt.P)
			txns3 := writeTxns(t, k, leader, third)
			if len(txns3) < 2 {
				t.Fatalf("version 3 in %d txn: nothing staged", len(txns3))
			}
			meta := feedNewest(t, k, follower.parts, append(txns2, txns3[:len(txns3)-1]...), tt.P)
			if meta == nil || meta.Version != 2 {
				t.Fatalf("newest meta %+v, want version 2", meta)
			}
			if got, err := follower.parts.commit(meta, follower.assign); !errors.Is(err, errMapIncomplete) {
				same := err == nil && reflect.DeepEqual(got, second)
				t.Fatalf("commit of version 2 with parts restaged for 3: %v (equals version 2: %v), want errMapIncomplete", err, same)
			}
			got := follow(t, k, follower.parts, follower.assign, txns3[len(txns3)-1:], tt.P)
			if !reflect.DeepEqual(got, third) {
				t.Fatal("version 3 after its commit differs")
			}
		})
	}
}

// feedNewest puts into m only the newest value of every map key that txns
// write, with the revision of its Txn, as a coalesced batch or a re-read
// delivers them; it returns the newest meta.
func feedNewest(t *testing.T, k keys, m *mapParts, txns [][]clientv3.Op, P int) *wireMeta {
	t.Helper()
	newest := map[string][]byte{}
	written := map[string]int64{}
	var order []string
	for _, ops := range txns {
		rev := testRevision.Add(1)
		for _, op := range ops {
			key := string(op.KeyBytes())
			if _, seen := newest[key]; !seen {
				order = append(order, key)
			}
			newest[key], written[key] = op.ValueBytes(), rev
		}
	}
	var meta *wireMeta
	for _, key := range order {
		rel, ok := strings.CutPrefix(key, k.mapPrefix())
		switch {
		case !ok:
		case rel == "meta":
			var err error
			if meta, err = decodeMeta(newest[key], P); err != nil {
				t.Fatal(err)
			}
			m.metaRev = written[key]
		default:
			if _, err := m.putPart(rel, newest[key], written[key], P); err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
		}
	}
	return meta
}

// TestServingIndexMatchesScan: over random versions written by a leader
// and applied by a follower (serving sets changed, grown, shrunk or
// emptied in a few partitions each time, and now and then a whole new
// map), the follower's index of the partitions each node serves answers
// what a pass over the map does.
func TestServingIndexMatchesScan(t *testing.T) {
	const P, n = 256, 8
	rng := rand.New(rand.NewPCG(7, 8))
	k := newKeys("t")
	leader, follower := newTestView(P), newTestView(P)
	cur := testMap(P, n, 1)
	for V := int64(1); V <= 300; V++ {
		next := &assignment{Version: V, Planned: cur.Planned, Partitions: slices.Clone(cur.Partitions)}
		if V > 1 && rng.IntN(20) > 0 {
			for range 1 + rng.IntN(6) {
				p := rng.IntN(P)
				var serving []string
				for _, i := range rng.Perm(n)[:rng.IntN(4)] {
					serving = append(serving, cur.Planned[i].ID)
				}
				next.Partitions[p] = partitionState{Target: serving, Serving: serving, Epoch: next.Partitions[p].Epoch + 1}
			}
		} else if V > 1 {
			next.Partitions = rotatedMap(next, V).Partitions
		}
		txns := writeTxns(t, k, leader, next)
		leader.assign = follow(t, k, leader.parts, leader.assign, txns, P)
		follower.assign = follow(t, k, follower.parts, follower.assign, txns, P)
		cur = follower.assign
		for _, pn := range cur.Planned {
			ids := map[string]bool{pn.ID: true}
			if got, want := follower.parts.servingAny(ids), servingScan(cur, ids); !slices.Equal(got, want) {
				t.Fatalf("v%d: %s serves %v by the index, %v by a scan", V, pn.ID, got, want)
			}
		}
		ids := map[string]bool{cur.Planned[rng.IntN(n)].ID: true, cur.Planned[rng.IntN(n)].ID: true}
		if got, want := follower.parts.servingAny(ids), servingScan(cur, ids); !slices.Equal(got, want) {
			t.Fatalf("v%d: %v serve %v by the index, %v by a scan", V, ids, got, want)
		}
	}
}

// rotatedMap returns a's map at version v with every serving set rotated by
// one node (every partition changes, among the same nodes).
func rotatedMap(a *assignment, v int64) *assignment {
	out := &assignment{Version: v, Planned: a.Planned, Partitions: make([]partitionState, len(a.Partitions))}
	for p, ps := range a.Partitions {
		s := slices.Clone(ps.Serving)
		if len(s) > 1 {
			s = append(s[1:], s[0])
		}
		out.Partitions[p] = partitionState{Target: s, Serving: slices.Clone(s), Epoch: ps.Epoch + 1}
	}
	return out
}
