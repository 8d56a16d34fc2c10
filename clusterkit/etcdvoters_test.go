package clusterkit

import (
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestStaleMember checks which etcd member the leader removes: a learner
// or unstarted member once seen for settleBound, or the voter of a gone
// node once seen for goneBound; never during maintenance, never a voter of a node away
// within the delay, never a voter whose removal leaves the live voters
// short of a quorum.
func TestStaleMember(t *testing.T) {
	voter := func(id uint64, name string) *etcdserverpb.Member { return &etcdserverpb.Member{ID: id, Name: name} }
	learner := func(id uint64, name string) *etcdserverpb.Member {
		return &etcdserverpb.Member{ID: id, Name: name, IsLearner: true}
	}
	live := func(ids ...string) map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	t0 := time.Unix(1000, 0)
	late := t0.Add(settleBound)
	early := t0.Add(goneBound - time.Millisecond)
	cases := []struct {
		name    string
		members []*etcdserverpb.Member
		nodes   etcdNodes
		now     time.Time
		want    uint64
	}{
		{"all live", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), voter(3, "c")}, etcdNodes{live: live("a", "b", "c")}, late, 0},
		{"gone voter", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), voter(3, "c")}, etcdNodes{live: live("a", "b", "d")}, late, 3},
		{"gone voter, not for long", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), voter(3, "c")}, etcdNodes{live: live("a", "b")}, early, 0},
		{"away voter", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), voter(3, "c")}, etcdNodes{live: live("a", "b"), away: live("c")}, late, 0},
		{"maintenance", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), voter(3, "c")}, etcdNodes{live: live("a", "b"), maintenance: true}, late, 0},
		{"quorum would break", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), voter(3, "c")}, etcdNodes{live: live("a")}, late, 0},
		{"two of five gone", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), voter(3, "c"), voter(4, "d"), voter(5, "e")}, etcdNodes{live: live("a", "b", "c")}, late, 4},
		{"stuck learner", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), learner(3, "c")}, etcdNodes{live: live("a", "b", "c")}, late, 3},
		{"joining learner", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), learner(3, "c")}, etcdNodes{live: live("a", "b", "c")}, early, 0},
		{"unstarted learner", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), learner(3, "")}, etcdNodes{live: live("a", "b")}, late, 3},
		{"learner of a lone voter without quorum", []*etcdserverpb.Member{voter(1, "a"), voter(2, "b"), learner(3, "c")}, etcdNodes{live: live("c")}, late, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[uint64]time.Time{}
			trackSuspects(tc.members, tc.nodes, seen, t0)
			got, why := staleMember(tc.members, tc.nodes, seen, tc.now)
			if got != tc.want {
				t.Fatalf("staleMember = %d (%s), want %d", got, why, tc.want)
			}
		})
	}
}

// TestTrackSuspects checks that a member that settles (promoted, its node
// back) is forgotten, so that a later suspicion starts a new clock.
func TestTrackSuspects(t *testing.T) {
	t0 := time.Unix(1000, 0)
	nodes := etcdNodes{live: map[string]bool{"a": true, "b": true}}
	seen := map[uint64]time.Time{}
	trackSuspects([]*etcdserverpb.Member{{ID: 1, Name: "a"}, {ID: 2, Name: "b", IsLearner: true}}, nodes, seen, t0)
	if _, ok := seen[2]; !ok || len(seen) != 1 {
		t.Fatalf("seen = %v, want the learner 2 only", seen)
	}
	trackSuspects([]*etcdserverpb.Member{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}}, nodes, seen, t0.Add(time.Second))
	if len(seen) != 0 {
		t.Fatalf("seen = %v after the promotion, want none", seen)
	}
	trackSuspects([]*etcdserverpb.Member{{ID: 1, Name: "a"}, {ID: 2, Name: "b", IsLearner: true}}, nodes, seen, t0.Add(2*time.Second))
	if got := seen[2]; !got.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("seen[2] = %v, want the new suspicion's time", got)
	}
}
