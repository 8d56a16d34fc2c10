package clusterkit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// The event derivation, fed synthetic watch batches: a follower with a
// real dispatcher and hooks, a fake clock and a recording ready state.

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fakeReady struct {
	mu    sync.Mutex
	ready map[int]int64
}

func (r *fakeReady) markReady(p int, since int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready[p] = since
}
func (r *fakeReady) keepReady(map[int]int64) {}
func (r *fakeReady) setFailing(int, bool)    {}
func (r *fakeReady) failed(int, error)       {}

// eventHarness drives one follower.
type eventHarness struct {
	t     *testing.T
	f     *follower
	k     keys
	now   time.Time
	rev   int64
	ready *fakeReady

	mu     sync.Mutex
	events []string
}

func newEventHarness(t *testing.T, me string) *eventHarness {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	m, err := newMetrics(nil, me)
	if err != nil {
		t.Fatal(err)
	}
	h := &eventHarness{t: t, k: newKeys("c"), now: t0, ready: &fakeReady{ready: map[int]int64{}}}
	hooks := &hookSet{}
	n := &notifier{hooks: hooks, disp: newDispatcher(ctx, &wg, zap.NewNop(), 4), metrics: m, log: zap.NewNop()}
	var snap atomic.Pointer[snapshot]
	h.f = newFollower(ctx, followerConfig{me: me, decoder: decoder{keys: h.k, partitions: 2, log: zap.NewNop()},
		notifier: n, ready: h.ready, snap: &snap, now: func() time.Time { return h.now }})
	h.attach(hooks)
	return h
}

func (h *eventHarness) add(format string, args ...any) {
	h.mu.Lock()
	h.events = append(h.events, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

// attach records every hook as a short string; every timestamp must be
// the fake clock's.
func (h *eventHarness) attach(hs *hookSet) {
	at := func(ts time.Time) string {
		if ts.Equal(h.now) {
			return ""
		}
		return "@" + ts.Sub(t0).String()
	}
	add(hs, &hs.nodeJoin, func(e *NodeJoinEvent) {
		h.add("join:%s:size=%d:bootstrap=%v%s", e.Node.ID, e.ClusterSize, e.IsBootstrap, at(e.Timestamp))
	})
	add(hs, &hs.nodeRejoin, func(e *NodeRejoinEvent) {
		flags := ""
		if e.SameIncarnation {
			flags += ":same"
		}
		if e.DataKept {
			flags += ":kept"
		}
		h.add("rejoin:%s:offline=%v:before=%v%s%s", e.Node.ID, e.OfflineDuration, e.PartitionsBeforeLeave, flags, at(e.Timestamp))
	})
	add(hs, &hs.nodeLeave, func(e *NodeLeaveEvent) {
		h.add("leave:%s:%s:owned=%v:replica=%v%s", e.Node.ID, e.Reason, e.PartitionsOwned, e.PartitionsReplica, at(e.Timestamp))
	})
	add(hs, &hs.rebalanceStart, func(e *RebalanceEvent) { h.add("start:%d:%s:%s", e.ID, e.Trigger, e.TriggerNodeID) })
	add(hs, &hs.rebalanceComplete, func(e *RebalanceEvent, d time.Duration) { h.add("complete:%d:%v", e.ID, d) })
	add(hs, &hs.partitionChange, func(_ context.Context, e *PartitionChangeEvent) error {
		var from []string
		for _, n := range e.CopyFromNodes {
			from = append(from, n.ID)
		}
		flags := ""
		if e.NoSource {
			flags += ":nosource"
		}
		if e.Promoted {
			flags += ":promoted"
		}
		if e.CatchUp {
			flags += ":catchup"
		}
		h.add("change:%s:%s:from=%v:%s%s%s", e.PartitionID, e.CopyToNode.ID, from, e.ChangeReason, flags, at(e.Timestamp))
		return nil
	})
}

// put and del make events of the next revision.
func (h *eventHarness) put(key string, v any, lease int64) watcher.Event {
	var b []byte
	switch v := v.(type) {
	case *assignment:
		b, _ = v.marshal()
	default:
		b, _ = json.Marshal(v)
	}
	h.rev++
	return watcher.Event{Type: watcher.Put, Key: key, Value: b, ModRevision: h.rev, CreateRevision: h.rev, Lease: lease}
}

func (h *eventHarness) del(key string, prev memberRecord) watcher.Event {
	b, _ := json.Marshal(prev)
	h.rev++
	return watcher.Event{Type: watcher.Delete, Key: key, PrevValue: b, ModRevision: h.rev}
}

// member puts id's record on lease, for a process whose incarnation is
// the lease number (each lease a new process); memberOf sets both.
func (h *eventHarness) member(id string, lease int64, state string) watcher.Event {
	return h.memberOf(id, lease, lease, state)
}

func (h *eventHarness) memberOf(id string, lease, incarnation int64, state string) watcher.Event {
	return h.put(h.k.member(id), memberRecord{ID: id, Addr: "127.0.0.1:1", State: state, Healthy: true, Incarnation: incarnation}, lease)
}

// apply feeds one batch and returns the events it caused, once delivered.
func (h *eventHarness) apply(initial bool, evs ...watcher.Event) []string {
	h.f.apply(watcher.Batch{Events: evs, Revision: h.rev, Initial: initial})
	done := make(chan struct{})
	h.f.notifier.disp.submitCluster(func() { close(done) }, true)
	<-done
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.events
	h.events = nil
	return out
}

// assign builds a two-partition map: serving and incoming per partition
// ("a,b" and "c@3" = c incoming since version 3).
func assign(version int64, planned []plannedNode, parts ...string) *assignment {
	a := &assignment{Version: version, Planned: planned}
	for _, p := range parts {
		serving, in, _ := strings.Cut(p, "|")
		ps := partitionState{Serving: strings.Split(serving, ","), Epoch: uint64(version)}
		ps.Target = slices.Clone(ps.Serving)
		if in != "" {
			node, since, _ := strings.Cut(in, "@")
			var s int64
			fmt.Sscan(since, &s)
			ps.Incoming = []incoming{{Node: node, Since: s}}
			ps.Target = append(ps.Target, node)
		}
		a.Partitions = append(a.Partitions, ps)
	}
	return a
}

func planned(ids ...string) []plannedNode {
	var out []plannedNode
	for _, id := range ids {
		inc := int64(10)
		if n, i, ok := strings.Cut(id, "#"); ok {
			id = n
			fmt.Sscan(i, &inc)
		}
		out = append(out, plannedNode{ID: id, Weight: 1, Incarnation: inc})
	}
	return out
}

// plannedDurable marks every node durable.
func plannedDurable(ps []plannedNode) []plannedNode {
	for i := range ps {
		ps[i].Durable = true
	}
	return ps
}

func TestEventsFromSyntheticBatches(t *testing.T) {
	type step struct {
		initial bool
		advance time.Duration
		batch   func(h *eventHarness) []watcher.Event
		want    []string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"join, then graceful leave", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.put(h.k.assignment(), assign(1, planned("a"), "a", "a"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event { return []watcher.Event{h.member("b", 20, memberActive)} },
				want: []string{"join:b:size=2:bootstrap=false"}},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.put(h.k.assignment(), assign(2, planned("a", "b#20"), "b,a", "a,b"), 0)}
			}}, // b serves without a reported handoff: a odd map, but nothing to report
			{batch: func(h *eventHarness) []watcher.Event { return []watcher.Event{h.member("b", 20, memberLeaving)} }},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.del(h.k.member("b"), memberRecord{ID: "b", State: memberLeaving})}
			}, want: []string{"leave:b:graceful_shutdown:owned=[partition-0]:replica=[partition-1]"}},
		}},
		{"lease expiry, then a rejoin measured by the clock", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(1, planned("a", "b#20"), "a,b", "b,a"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.del(h.k.member("b"), memberRecord{ID: "b", State: memberActive})}
			}, want: []string{"leave:b:lease_expired:owned=[partition-1]:replica=[partition-0]"}},
			{advance: 5 * time.Second, batch: func(h *eventHarness) []watcher.Event { return []watcher.Event{h.member("b", 21, memberActive)} },
				want: []string{"rejoin:b:offline=5s:before=[partition-0 partition-1]"}},
		}},
		{"the same process registers again after its lease expired: same incarnation, data kept", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(1, planned("a", "b#20"), "a,b", "b,a"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.del(h.k.member("b"), memberRecord{ID: "b", State: memberActive, Incarnation: 20})}
			}, want: []string{"leave:b:lease_expired:owned=[partition-1]:replica=[partition-0]"}},
			{advance: 3 * time.Second, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.memberOf("b", 21, 20, memberActive)}
			}, want: []string{"rejoin:b:offline=3s:before=[partition-0 partition-1]:same:kept"}},
		}},
		{"the same process rebinds its live record to a new lease: no event", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(1, planned("a", "b#20"), "a,b", "b,a"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event { return []watcher.Event{h.memberOf("b", 21, 20, memberActive)} }},
		}},
		{"a durable node's new process: a catch-up of what it held, no source lost", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(1, plannedDurable(planned("a", "b#20")), "b", "a,b"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.put(h.k.member("b"), memberRecord{ID: "b", Addr: "127.0.0.1:1", State: memberActive, Healthy: true, Incarnation: 30, Durable: true}, 30),
					h.put(h.k.assignment(), assign(2, plannedDurable(planned("a", "b#30")), "b", "a|b@2"), 0)}
			}, want: []string{"rejoin:b:offline=0s:before=[partition-0]:kept", "change:partition-1:b:from=[a]:node_join:catchup"}},
		}},
		{"a restart that takes its live record over", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(1, planned("a", "b#20"), "a,b", "b,a"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event { return []watcher.Event{h.member("b", 20, memberLeaving)} }},
			{batch: func(h *eventHarness) []watcher.Event { return []watcher.Event{h.member("b", 30, memberActive)} },
				want: []string{"rejoin:b:offline=0s:before=[partition-0 partition-1]"}},
		}},
		{"a rejoin known from the leader's history", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.put(h.k.assignment(), assign(1, planned("a"), "a", "a"), 0),
					h.put(h.k.history("b"), historyRecord{LastSeen: t0.Add(-time.Minute), Primaries: []int{1}, Incarnation: 20}, 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event { return []watcher.Event{h.member("b", 21, memberActive)} },
				want: []string{"rejoin:b:offline=1m0s:before=[partition-1]"}},
		}},
		{"a rebalance: start, handoff, completion", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(1, planned("a"), "a", "a"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{
					h.put(h.k.assignment(), assign(2, planned("a", "b#20"), "a|b@2", "a"), 0),
					h.put(h.k.rebalance(), rebalanceRecord{ID: 1, Trigger: ReasonNodeJoin, TriggerNodeID: "b", StartedAt: t0}, 0)}
			}, want: []string{"start:1:node_join:b", "change:partition-0:b:from=[a]:node_join"}},
			{advance: 2 * time.Second, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{
					h.put(h.k.assignment(), assign(3, planned("a", "b#20"), "a,b", "a"), 0),
					h.put(h.k.rebalance(), rebalanceRecord{ID: 1, Trigger: ReasonNodeJoin, TriggerNodeID: "b", StartedAt: t0, CompletedAt: t0.Add(time.Second)}, 0)}
			}, want: []string{"complete:1:1s"}},
		}},
		{"every server of a partition leaves: its new server has no source", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(1, planned("a", "b#20"), "b", "a"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.del(h.k.member("b"), memberRecord{ID: "b", State: memberActive}),
					h.put(h.k.assignment(), assign(2, planned("a"), "a", "a"), 0)}
			}, want: []string{"leave:b:lease_expired:owned=[partition-0]:replica=[]", "change:partition-0:a:from=[]:node_join:nosource"}},
		}},
		{"joined mid-rebalance: neither start nor completion", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(2, planned("a", "b#20"), "a|b@2", "a"), 0),
					h.put(h.k.rebalance(), rebalanceRecord{ID: 4, Trigger: ReasonNodeJoin, StartedAt: t0}, 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.put(h.k.rebalance(), rebalanceRecord{ID: 4, Trigger: ReasonNodeJoin, StartedAt: t0, CompletedAt: t0}, 0)}
			}},
		}},
		{"a primary leaves: its replica is promoted", []step{
			{initial: true, batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.member("a", 10, memberActive), h.member("b", 20, memberActive),
					h.put(h.k.assignment(), assign(1, planned("a", "b#20"), "b,a", "a,b"), 0)}
			}},
			{batch: func(h *eventHarness) []watcher.Event {
				return []watcher.Event{h.del(h.k.member("b"), memberRecord{ID: "b", State: memberActive}),
					h.put(h.k.assignment(), assign(2, planned("a"), "a", "a"), 0),
					h.put(h.k.rebalance(), rebalanceRecord{ID: 1, Trigger: ReasonNodeLeave, TriggerNodeID: "b", StartedAt: t0, CompletedAt: t0}, 0)}
			}, want: []string{"leave:b:lease_expired:owned=[partition-0]:replica=[partition-1]", "start:1:node_leave:b",
				"change:partition-0:a:from=[]:node_leave:promoted", "complete:1:0s"}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newEventHarness(t, "a")
			for i, s := range tc.steps {
				h.now = h.now.Add(s.advance)
				got := h.apply(s.initial, s.batch(h)...)
				slices.Sort(got)
				want := slices.Clone(s.want)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("step %d: events\n  %q\nwant\n  %q", i, got, want)
				}
			}
		})
	}
}

// Order within one batch: member changes, then the rebalance start, then
// its partition changes, then its completion.
func TestEventsOrderWithinABatch(t *testing.T) {
	h := newEventHarness(t, "a")
	h.apply(true, h.member("a", 10, memberActive), h.put(h.k.assignment(), assign(1, planned("a"), "a", "a"), 0))
	got := h.apply(false, h.member("b", 20, memberActive),
		h.put(h.k.assignment(), assign(2, planned("a", "b#20"), "a|b@2", "a|b@2"), 0),
		h.put(h.k.rebalance(), rebalanceRecord{ID: 1, Trigger: ReasonNodeJoin, TriggerNodeID: "b", StartedAt: t0}, 0))
	if len(got) != 4 || got[0] != "join:b:size=2:bootstrap=false" || got[1] != "start:1:node_join:b" ||
		!strings.HasPrefix(got[2], "change:") || !strings.HasPrefix(got[3], "change:") {
		t.Fatalf("events %q; want join, start, then the two changes", got)
	}
}

// This node's own incoming partition: its handlers run and their success
// is reported as ready with the incoming version.
func TestEventsOwnHandoffReportsReady(t *testing.T) {
	h := newEventHarness(t, "b")
	h.apply(true, h.member("a", 10, memberActive), h.member("b", 20, memberActive),
		h.put(h.k.assignment(), assign(1, planned("a"), "a", "a"), 0))
	got := h.apply(false, h.put(h.k.assignment(), assign(2, planned("a", "b#20"), "a", "a|b@2"), 0))
	if !slices.Equal(got, []string{"change:partition-1:b:from=[a]:node_join"}) {
		t.Fatalf("events %q; want b's change of partition-1", got)
	}
	h.ready.mu.Lock()
	defer h.ready.mu.Unlock()
	if h.ready.ready[1] != 2 || len(h.ready.ready) != 1 {
		t.Fatalf("ready %v; want partition 1 ready since version 2", h.ready.ready)
	}
}
