package clusterkit

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSnapshotWithChunksMatchesFullBuild checks the incremental snapshot
// (only the changed chunks rebuilt) against a full build, for every step
// of a join (incoming, then serving) and from every node's side, lookups
// included.
func TestSnapshotWithChunksMatchesFullBuild(t *testing.T) {
	cfg := clusterConfig{FormatVersion: 2, PartitionCount: 100, ReplicationFactor: 3, Hash: "xxhash64"}
	in, _ := apply(t, reconcileInput{cfg: cfg, members: members("a", "b", "c", "d")})
	steps := []*assignment{in.assign}
	in.members = members("a", "b", "c", "d", "e")
	in, _ = apply(t, in)
	steps = append(steps, in.assign)
	ready := readyRecord{}
	for p, ps := range in.assign.Partitions {
		for _, inc := range ps.Incoming {
			if inc.Node == "e" && p%2 == 0 { // half of e's handoffs done
				ready[p] = inc.Since
			}
		}
	}
	in.ready = map[string]readyRecord{"e": ready}
	in, _ = apply(t, in)
	steps = append(steps, in.assign)
	if len(slices.Collect(changedChunkList(steps[1], steps[2]))) == 0 {
		t.Fatal("the ready records changed nothing: the test tests nothing")
	}
	for _, me := range []string{"a", "e"} {
		for i := 1; i < len(steps); i++ {
			prev := newSnapshot(me, in.members, steps[i-1], 7, "a")
			got := prev.withChunks(me, membersOnly(in.members, 7, "b"), steps[i], steps[i-1], slices.Collect(changedChunkList(steps[i-1], steps[i])), nil)
			want := newSnapshot(me, in.members, steps[i], 7, "b")
			compareSnapshots(t, me, i, got, want)
			// The published snapshot prev is left as it was (chunks are
			// copied before they change): no reader sees a half-applied map.
			compareSnapshots(t, me, i, prev, newSnapshot(me, in.members, steps[i-1], 7, "a"))
			// A full build that follows prev gives the same snapshot.
			compareSnapshots(t, me, i, nextSnapshot(me, membersOnly(in.members, 7, "b"), steps[i], prev, steps[i-1], nil), want)
		}
		// A member the map does not name joins: the same map, new members.
		last := steps[len(steps)-1]
		joined := members("a", "b", "c", "d", "e", "z")
		prev := newSnapshot(me, in.members, last, 7, "b")
		got := prev.withChunks(me, membersOnly(joined, 8, "b"), last, last, nil, nil)
		compareSnapshots(t, me, len(steps), got, newSnapshot(me, joined, last, 8, "b"))
		// A named node leaves and another turns unhealthy, with a map
		// change: their partitions are rebuilt (offline, unhealthy).
		left := members("a", "b", "d", "e", "z")
		sick := left["d"]
		sick.Healthy = false
		left["d"] = sick
		got = newSnapshot(me, in.members, steps[1], 7, "b").withChunks(me, membersOnly(left, 9, "b"), last, steps[1],
			slices.Collect(changedChunkList(steps[1], last)), servingScan(last, map[string]bool{"c": true, "d": true}))
		compareSnapshots(t, me, len(steps)+1, got, newSnapshot(me, left, last, 9, "b"))
		compareSnapshots(t, me, len(steps)+1, nextSnapshot(me, membersOnly(left, 9, "b"), last, newSnapshot(me, in.members, steps[1], 7, "b"), steps[1], nil),
			newSnapshot(me, left, last, 9, "b"))
	}
}

// servingScan returns, in index order, the partitions of a whose serving
// sets name a node of ids: what mapParts.servingAny answers from its index.
func servingScan(a *assignment, ids map[string]bool) []int {
	var out []int
	for p, ps := range a.Partitions {
		if slices.ContainsFunc(ps.Serving, func(id string) bool { return ids[id] }) {
			out = append(out, p)
		}
	}
	return out
}

// changedChunkList yields the chunks in which a and b differ.
func changedChunkList(a, b *assignment) func(func(int) bool) {
	return func(yield func(int) bool) {
		for c := range chunkCount(len(a.Partitions)) {
			lo, hi := chunkRange(c, len(a.Partitions))
			for p := lo; p < hi; p++ {
				if !samePartition(a.Partitions[p], b.Partitions[p]) {
					if !yield(c) {
						return
					}
					break
				}
			}
		}
	}
}

func compareSnapshots(t *testing.T, me string, step int, got, want *snapshot) {
	t.Helper()
	trim := func(h []int) []int {
		for len(h) > 0 && h[len(h)-1] == 0 {
			h = h[:len(h)-1]
		}
		return h
	}
	if got.version != want.version || got.leader != want.leader || got.settled != want.settled || got.mine != want.mine ||
		!slices.Equal(trim(got.live), trim(want.live)) || got.count != want.count ||
		!slices.Equal(got.away, want.away) || got.maintenance != want.maintenance {
		t.Fatalf("%s, step %d: incremental snapshot differs:\ngot  v%d settled=%v mine=%+v live=%v\nwant v%d settled=%v mine=%+v live=%v",
			me, step, got.version, got.settled, got.mine, got.live, want.version, want.settled, want.mine, want.live)
	}
	for p := range want.count {
		if got.primaryAt(p) != want.primaryAt(p) || got.replicaAt(p) != want.replicaAt(p) || got.liveAt(p) != want.liveAt(p) {
			t.Fatalf("%s, step %d, partition %d: primary/replica/live %v/%v/%d, want %v/%v/%d", me, step, p,
				got.primaryAt(p), got.replicaAt(p), got.liveAt(p), want.primaryAt(p), want.replicaAt(p), want.liveAt(p))
		}
		g, w := *got.part(p), *want.part(p)
		if g.ID != w.ID || g.Epoch != w.Epoch || g.PrimaryNode != w.PrimaryNode || !slices.Equal(g.ReplicaNodes, w.ReplicaNodes) ||
			!slices.Equal(g.IncomingNodes, w.IncomingNodes) {
			t.Fatalf("%s, step %d, partition %d: got %+v, want %+v", me, step, p, g, w)
		}
		if !slices.EqualFunc(got.servingAt(p), want.servingAt(p), func(x, y Node) bool { return sameNodeValue(&x, &y) }) {
			t.Fatalf("%s, step %d, partition %d: nodes %v, want %v", me, step, p, got.servingAt(p), want.servingAt(p))
		}
	}
	if !slices.EqualFunc(got.members, want.members, func(x, y Node) bool { return sameNodeValue(&x, &y) }) ||
		!slices.Equal(got.unhealthy, want.unhealthy) {
		t.Fatalf("%s, step %d: members differ", me, step)
	}
}

// TestEditedMembersMatchesRebuild: after any batch of member puts and
// deletes (repeated IDs, re-created members and updates that leave the
// Node as it was included), the members edited from the previous snapshot
// equal those rebuilt from scratch, exactly the members whose Node differs
// are reported changed, and the previous snapshot's members are unchanged.
func TestEditedMembersMatchesRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	members := map[string]memberRecord{}
	prev := membersOnly(members, 1, "")
	for rev := int64(2); rev < 2000; rev++ {
		var changes []memberChange
		for range 1 + rng.IntN(maxMemberEdits) {
			id := fmt.Sprintf("node-%02d", rng.IntN(40))
			if rec, ok := members[id]; ok && rng.IntN(4) == 0 {
				rec.Lease, rec.State = rev, memberLeaving // the Node stays as it was
				members[id] = rec
				changes = append(changes, memberChange{put: true, rec: rec})
				continue
			}
			if rng.IntN(3) == 0 {
				rec := members[id]
				delete(members, id)
				rec.ID = id
				changes = append(changes, memberChange{rec: rec})
				continue
			}
			rec := memberRecord{ID: id, Addr: fmt.Sprintf("127.0.0.1:%d", rev), Healthy: rng.IntN(2) == 0, Incarnation: rev}
			members[id] = rec
			changes = append(changes, memberChange{put: true, rec: rec})
		}
		before := slices.Clone(prev.members)
		got, changed := membersSnapshot(members, rev, "", prev, changes)
		want := membersOnly(members, rev, "")
		if want := changedNodes(prev, got); !maps.Equal(changed, want) {
			t.Fatalf("rev %d: reported changed %v, want %v", rev, changed, want)
		}
		if !slices.EqualFunc(got.members, want.members, func(a, b Node) bool { return sameNodeValue(&a, &b) }) {
			t.Fatalf("rev %d: edited members %v, rebuilt %v", rev, got.members, want.members)
		}
		for _, n := range want.members {
			if g, ok := got.member(n.ID); !ok || !sameNodeValue(g, &n) {
				t.Fatalf("rev %d: member(%s) = %v, want %v", rev, n.ID, g, n)
			}
		}
		if !slices.Equal(got.unhealthy, want.unhealthy) {
			t.Fatalf("rev %d: unhealthy %v, want %v", rev, got.unhealthy, want.unhealthy)
		}
		if !slices.EqualFunc(prev.members, before, func(a, b Node) bool { return sameNodeValue(&a, &b) }) {
			t.Fatalf("rev %d: the previous snapshot's members changed", rev)
		}
		prev = got
	}
}

// membersOnly is membersSnapshot built from scratch.
func membersOnly(members map[string]memberRecord, rev int64, leader string) *snapshot {
	s, _ := membersSnapshot(members, rev, leader, nil, nil)
	return s
}
