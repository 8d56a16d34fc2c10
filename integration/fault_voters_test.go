package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
)

// TestDeadVoterReplaced SIGKILLs an etcd voter of four embedded nodes
// (MaxVoters 3) and keeps it down: once its rebalance delay is over, the
// leader removes its member and the plain node joins as a voter, so etcd
// again has three voters (the live nodes') and no learner.
func TestDeadVoterReplaced(t *testing.T) {
	c, nodes := formEmbedded(t, 4, "-rebalance-delay", "1s")
	voters, _ := etcdRoles(t, nodes)
	victim := voters[1]
	victim.kill()
	begin := time.Now()
	live := slices.DeleteFunc(slices.Clone(nodes), func(n *nodeProc) bool { return n == victim })
	got := waitMemberNames(t, nodes, idsOf(live), 40*time.Second)
	t.Logf("voter %s killed: voters %v after %v", victim.id, got, time.Since(begin))
	reliability.Summary(t, map[string]any{"voter_replaced": time.Since(begin), "rebalance_delay": time.Second, "voters": len(got)})
	c.waitSettled(live, 30*time.Second)
}

// waitMemberNames asks the running nodes' etcd for its member list until
// its voters are exactly want and it has no learner, failing the test
// after timeout; it returns the voters last seen.
func waitMemberNames(t testing.TB, nodes []*nodeProc, want []string, timeout time.Duration) []string {
	t.Helper()
	cli := runningEtcdClient(t, nodes)
	defer cli.Close()
	slices.Sort(want)
	deadline := time.Now().Add(timeout)
	var voters []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := cli.MemberList(ctx)
		cancel()
		learners := 0
		voters = voters[:0]
		if err == nil {
			for _, m := range resp.Members {
				if m.IsLearner {
					learners++
				} else {
					voters = append(voters, m.Name)
				}
			}
			slices.Sort(voters)
			if learners == 0 && slices.Equal(voters, want) {
				return voters
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd voters %v and %d learners (%v) after %v, want voters %v and no learner", voters, learners, err, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStuckLearnerRemoved adds a learner that never starts (a join whose
// process died right after the add) to four embedded nodes: the leader
// removes it, so that later joins are not refused with "too many learner
// members" for good.
func TestStuckLearnerRemoved(t *testing.T) {
	_, nodes := formEmbedded(t, 4)
	voterNodes, _ := etcdRoles(t, nodes)
	voters := idsOf(voterNodes)
	cli := runningEtcdClient(t, nodes)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	resp, err := cli.MemberAddAsLearner(ctx, []string{"http://" + freePort(t)})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	got := waitMemberNames(t, nodes, voters, 30*time.Second)
	t.Logf("learner %x removed %v after its add; voters %v", resp.Member.ID, time.Since(added), got)
	reliability.Summary(t, map[string]any{"learner_removed": time.Since(added), "voters": len(got)})
}
