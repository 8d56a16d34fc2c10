package clusterkit

import (
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// mapSteps drives the leader's planner and writer without etcd: it
// applies every write to a follower's view (as the watch would) and
// reports what each write costs a watcher.
type mapSteps struct {
	tb    testing.TB
	k     keys
	v     *view
	in    reconcileInput
	txns  int
	bytes int // keys + values put, as every watcher receives them
	maxOp int // the largest Txn's operations
	maxB  int // the largest Txn's keys + values
}

// settle plans and writes until the planner has nothing left to do,
// marking every incoming partition ready after each write (no-op
// handoffs), and returns the number of rounds.
func (s *mapSteps) settle() int {
	rounds := 0
	for ; rounds < 20; rounds++ {
		s.in.assign, s.in.now = s.v.assign, s.in.now.Add(time.Millisecond)
		out, err := reconcile(s.in)
		if err != nil {
			s.tb.Fatal(err)
		}
		if out.empty() {
			return rounds
		}
		b := s.v.mapBase()
		txns, err := writeOps(s.k, out, s.v.assign, &b, clusterConfig{})
		if err != nil {
			s.tb.Fatal(err)
		}
		for _, ops := range txns {
			n := 0
			for _, op := range ops {
				n += len(op.KeyBytes()) + len(op.ValueBytes())
			}
			s.txns, s.bytes, s.maxOp, s.maxB = s.txns+1, s.bytes+n, max(s.maxOp, len(ops)), max(s.maxB, n)
		}
		if out.assign != nil {
			s.v.assign = follow(s.tb, s.k, s.v.parts, s.v.assign, txns, len(out.assign.Partitions))
		}
		if out.rebalance != nil {
			s.in.rebalance = out.rebalance
		}
		s.markReady()
	}
	s.tb.Fatalf("not settled after %d rounds", rounds)
	return rounds
}

// markReady writes a ready record for every node that has incoming
// partitions (counted as one put each).
func (s *mapSteps) markReady() {
	s.in.ready = map[string]readyRecord{}
	for p, ps := range s.v.assign.Partitions {
		for _, in := range ps.Incoming {
			if s.in.ready[in.Node] == nil {
				s.in.ready[in.Node] = readyRecord{}
			}
			s.in.ready[in.Node][p] = in.Since
		}
	}
	for id, r := range s.in.ready {
		b, err := r.marshal()
		if err != nil {
			s.tb.Fatal(err)
		}
		s.bytes += len(s.k.ready(id)) + len(b)
	}
}

func (s *mapSteps) reset() { s.txns, s.bytes, s.maxOp, s.maxB = 0, 0, 0, 0 }

// newMapSteps returns the steps of a map of p partitions, RF 3, over n
// members node-0000 onwards, before its first plan.
func newMapSteps(tb testing.TB, n, p int) *mapSteps {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("node-%04d", i))
	}
	return &mapSteps{tb: tb, k: newKeys("default"), v: newTestView(p), in: reconcileInput{
		cfg: clusterConfig{PartitionCount: p, ReplicationFactor: 3}, members: members(ids...),
		departed: map[string]departure{}, now: time.Unix(1000, 0)}}
}

// BenchmarkMapWrites measures, without etcd, the map writes of a join and
// of a crash (lease expiry, no rebalance delay) through every handoff
// step: Txns, bytes a watcher receives for them (map parts, meta,
// rebalance and history records, ready records) and the largest Txn.
func BenchmarkMapWrites(b *testing.B) {
	for _, size := range []struct{ n, p int }{{100, 1024}, {1000, 16384}} {
		b.Run(fmt.Sprintf("%dx%d", size.n, size.p), func(b *testing.B) {
			for b.Loop() {
				s := newMapSteps(b, size.n, size.p)
				s.settle()
				s.reset()
				s.in.members["node-join"] = memberRecord{ID: "node-join", Weight: 1, Incarnation: 1}
				rounds := s.settle()
				perWatcher := s.bytes
				b.ReportMetric(float64(perWatcher), "join-B/watcher")
				b.ReportMetric(float64(perWatcher*(size.n+1))/1e6, "join-MB-all-watchers")
				b.ReportMetric(float64(s.txns), "join-txns")
				b.ReportMetric(float64(rounds), "join-writes")
				b.ReportMetric(float64(s.maxOp), "join-max-ops/txn")
				s.reset()
				gone := s.in.members["node-0003"]
				delete(s.in.members, "node-0003")
				s.in.departed["node-0003"] = departure{Record: gone, Reason: LeaveLeaseExpired, At: s.in.now}
				rounds = s.settle()
				b.ReportMetric(float64(s.bytes), "crash-B/watcher")
				b.ReportMetric(float64(s.txns), "crash-txns")
				b.ReportMetric(float64(rounds), "crash-writes")
				b.ReportMetric(float64(s.maxB), "crash-max-txn-B")
			}
		})
	}
}

// BenchmarkNamedMemberChange measures what one node's snapshot costs when
// the record of a node the map names changes (a re-registration gives it
// a new StartedAt): its partitions are rebuilt with the new Node value.
func BenchmarkNamedMemberChange(b *testing.B) {
	for _, size := range []struct{ n, p int }{{1000, 1024}, {1000, 16384}} {
		b.Run(fmt.Sprintf("%dx%d", size.n, size.p), func(b *testing.B) {
			s := newMapSteps(b, size.n, size.p)
			s.settle()
			ids := slices.Sorted(maps.Keys(s.in.members))
			v := s.v
			v.members, v.memberRev = s.in.members, 1
			var ptr atomic.Pointer[snapshot]
			publishSnapshot(&ptr, ids[0], v, ids[0], true, nil, nil)
			for i := 0; b.Loop(); i++ {
				prev := v.members[ids[7]]
				rec := prev
				rec.StartedAt = time.Unix(int64(2000+i), 0)
				v.members[ids[7]], v.memberRev = rec, v.memberRev+1
				publishSnapshot(&ptr, ids[0], v, ids[0], false, v.assign, []memberChange{{put: true, rec: rec, prev: &prev}})
			}
			if got := ptr.Load().servingAt(servingScan(v.assign, map[string]bool{ids[7]: true})[0]); !slices.ContainsFunc(got, func(n Node) bool {
				return n.ID == ids[7] && n.StartedAt.Equal(v.members[ids[7]].StartedAt)
			}) {
				b.Fatalf("%s's partitions do not hold its new record", ids[7])
			}
		})
	}
}
