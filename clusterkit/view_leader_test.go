package clusterkit

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestLeaderFollowsLowestCreateRevision: after any sequence of election
// key puts (new keys, re-created keys, value updates) and deletes, the
// view's leader is the value of the key with the lowest create revision.
func TestLeaderFollowsLowestCreateRevision(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	v := newView(8)
	for rev := int64(1); rev < 5000; rev++ {
		name := fmt.Sprintf("leader/%d", rng.IntN(12))
		switch k, ok := v.leaders[name]; {
		case rng.IntN(3) == 0:
			v.setLeaderKey(name, leaderKey{}, false)
		case ok && rng.IntN(2) == 0: // an update keeps the create revision
			v.setLeaderKey(name, leaderKey{value: fmt.Sprintf("n%d", rev), createRev: k.createRev}, true)
		default: // created (or re-created, its delete unseen)
			v.setLeaderKey(name, leaderKey{value: fmt.Sprintf("n%d", rev), createRev: rev}, true)
		}
		want, best := "", int64(0)
		for _, k := range v.leaders {
			if best == 0 || k.createRev < best {
				want, best = k.value, k.createRev
			}
		}
		if got := v.leader(); got != want {
			t.Fatalf("rev %d: leader %q, want %q (keys %v)", rev, got, want, v.leaders)
		}
	}
}
