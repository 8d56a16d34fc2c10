package integration

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
)

// TestLearnerKilledMidJoinRestarts SIGKILLs a node while its etcd member
// is a learner that has started (its write-ahead log exists) but is not
// promoted, and restarts it with its original options. The member
// restarts as a learner from its data; it must become a voter in place
// (same member ID). Before the fix nothing promoted it: it held etcd's one
// learner slot until the leader removed it as stuck (10 s) and the node
// joined again with a new member, so a fault right after a formation
// (nodes killed while their joins ran) met an etcd short of voters.
func TestLearnerKilledMidJoinRestarts(t *testing.T) {
	c, nodes := formEmbedded(t, 2)
	cli := runningEtcdClient(t, nodes[:1])
	defer cli.Close()

	n, id := killStartedLearner(t, c, cli)
	restarted := time.Now()
	n.restart(c.bin)
	n.waitStarted()
	nodes = append(nodes, n)
	c.waitSettled(nodes, 60*time.Second)
	checkVoters(t, nodes, 3)
	t.Logf("3 voters %v after the restart", time.Since(restarted))
	reliability.Summary(t, map[string]any{"three_voters_after_restart": time.Since(restarted)})
	if got, _ := memberOf(t, cli, n.id); got != id {
		t.Errorf("%s is member %x, want its restarted learner %x promoted in place", n.id, got, id)
	}
}

// killStartedLearner starts new nodes until one is caught with its etcd
// member started (write-ahead log written) and still a learner: it is
// frozen at that moment, which holds its promotion, and SIGKILLed. It
// returns that node and its member ID. A node caught too late (already a
// voter) is stopped gracefully, which removes its member, and the next
// one is tried.
func killStartedLearner(t *testing.T, c *procCluster, cli *clientv3.Client) (*nodeProc, uint64) {
	t.Helper()
	for attempt := range 5 {
		n := c.spawn(fmt.Sprintf("n%d", 3+attempt))
		waitFile(t, filepath.Join(n.dir, "data", "etcd-*", "member", "wal", "*.wal"))
		n.freeze()
		id, learner := memberOf(t, cli, n.id)
		if learner {
			n.kill()
			t.Logf("%s's learner %x started and was killed before its promotion", n.id, id)
			return n, id
		}
		t.Logf("%s's member was a voter already; trying another node", n.id)
		n.thaw()
		n.waitStarted()
		n.gracefulStop(t)
	}
	t.Fatal("no learner caught between its start and its promotion in 5 attempts")
	return nil, 0
}

// memberOf returns the ID of the etcd member of the node named id, or of
// the one member that has not started yet (no name), and whether it is
// a learner.
func memberOf(t *testing.T, cli *clientv3.Client, id string) (uint64, bool) {
	t.Helper()
	for _, m := range listMembers(t, cli) {
		if m.Name == id || m.Name == "" {
			return m.ID, m.IsLearner
		}
	}
	t.Fatalf("%s has no etcd member", id)
	return 0, false
}

// waitFile waits until a file matches pattern.
func waitFile(t *testing.T, pattern string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return
		}
	}
	t.Fatalf("no file %s within 60 s", pattern)
}
