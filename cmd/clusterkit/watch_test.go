package main

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	n1 := member{ID: "node-1", Address: "a:1", Weight: 1, State: "active", Incarnation: 11}
	n2 := member{ID: "node-2", Address: "a:2", Weight: 1, State: "active", Incarnation: 22}
	p := func(id, primary string, replicas, incoming []string, epoch uint64) partition {
		return partition{ID: id, Primary: primary, Replicas: replicas, Incoming: incoming, Epoch: epoch}
	}
	base := clusterView{Leader: "node-1", AssignmentVersion: 5, Settled: true, Members: []member{n1, n2},
		Partitions: []partition{p("partition-0", "node-1", []string{"node-2"}, nil, 3), p("partition-1", "node-2", []string{"node-1"}, nil, 3)}}
	with := func(change func(v *clusterView)) *clusterView {
		v := base
		v.Members = append([]member(nil), base.Members...)
		v.Partitions = append([]partition(nil), base.Partitions...)
		change(&v)
		return &v
	}
	for _, tc := range []struct {
		name string
		b    *clusterView
		want []string // "event: message", in order
	}{
		{"nothing", with(func(v *clusterView) {}), nil},
		{"join", with(func(v *clusterView) {
			v.Members = append(v.Members, member{ID: "node-3", Address: "a:3", Zone: "z1", Weight: 2, State: "active", Incarnation: 33})
			v.Settled = false
		}), []string{"member_joined: joined node-3 (address a:3, zone z1, weight 2)", "settled: map v5 not settled (membership changed; the leader plans anew)"}},
		{"leave", with(func(v *clusterView) { v.Members = v.Members[:1] }), []string{"member_left: left node-2"}},
		{"offline", with(func(v *clusterView) { v.Members[1].State, v.Members[1].Address = "offline", "" }),
			[]string{"member_state: state node-2: active → offline"}},
		{"restart", with(func(v *clusterView) { v.Members[1].Incarnation = 0x2a }),
			[]string{"member_restarted: restarted node-2: new incarnation 2a"}},
		{"new weight", with(func(v *clusterView) { v.Members[0].Weight = 3 }),
			[]string{"member_changed: changed node-1: address a:1, weight 1 → address a:1, weight 3"}},
		{"leader", with(func(v *clusterView) { v.Leader = "" }), []string{"leader: leader node-1 → -"}},
		{"map", with(func(v *clusterView) {
			v.AssignmentVersion = 7
			v.Settled = false
			v.Partitions[1] = p("partition-1", "node-2", []string{"node-1"}, []string{"node-3"}, 3)
		}), []string{
			"map: map v5 → v7: 1 partitions changed; rebalancing: 1 incoming",
			"partition: partition-1 epoch 3: primary node-2, replicas node-1, incoming node-3",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range diff(&base, tc.b) {
				got = append(got, e.Event+": "+e.Message)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
