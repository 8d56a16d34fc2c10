package integration

import (
	"context"
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
//
// To hold the learner unpromoted, the test freezes one of the two voters
// as soon as the learner is added (no quorum, so no promotion and no
// lease expiry) and thaws it after the kill.
func TestLearnerKilledMidJoinRestarts(t *testing.T) {
	c, nodes := formEmbedded(t, 2)
	cli := runningEtcdClient(t, nodes[:1])
	defer cli.Close()

	n3 := c.spawn("n3")
	id := waitNewMember(t, cli, "n1", "n2")
	nodes[1].freeze()
	waitFile(t, filepath.Join(n3.dir, "data", "etcd-*", "member", "wal", "*.wal"))
	n3.kill()
	nodes[1].thaw()
	t.Logf("n3's learner %x started and was killed before its promotion", id)

	restarted := time.Now()
	n3.restart(c.bin)
	n3.waitStarted()
	nodes = append(nodes, n3)
	c.waitSettled(nodes, 60*time.Second)
	checkVoters(t, nodes, 3)
	t.Logf("3 voters %v after the restart", time.Since(restarted))
	reliability.Summary(t, map[string]any{"three_voters_after_restart": time.Since(restarted)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range resp.Members {
		if m.Name == "n3" && m.ID != id {
			t.Errorf("n3 is member %x, want its restarted learner %x promoted in place", m.ID, id)
		}
	}
}

// waitNewMember polls etcd's member list until a member other than
// known appears and returns its ID.
func waitNewMember(t *testing.T, cli *clientv3.Client, known ...string) uint64 {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := cli.MemberList(ctx)
		cancel()
		if err != nil {
			continue
		}
	members:
		for _, m := range resp.Members {
			for _, k := range known {
				if m.Name == k {
					continue members
				}
			}
			if !m.IsLearner {
				t.Fatalf("member %x %q is a voter already: the test missed its learner", m.ID, m.Name)
			}
			return m.ID
		}
	}
	t.Fatal("no new etcd member within 60 s")
	return 0
}

// waitFile waits until a file matches pattern.
func waitFile(t *testing.T, pattern string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return
		}
	}
	t.Fatalf("no file %s within 30 s", pattern)
}
