package embedetcd

import (
	"context"
	"errors"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"
)

// learnerDataDir leaves in cfg.Dir the data of a learner of m1's cluster
// that started and stopped before its promotion (its node died mid-join).
func learnerDataDir(t *testing.T, ctx context.Context, m1 *Member, cfg Config) {
	t.Helper()
	s, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	cli := clientT(t, m1.ClientURL())
	resp, err := cli.MemberAddAsLearner(ctx, []string{s.peerURL})
	if err != nil {
		t.Fatalf("add learner: %v", err)
	}
	j := &joiner{s: s, cli: cli}
	ic, err := j.initialCluster(resp.Members, resp.Member.ID)
	if err != nil {
		t.Fatal(err)
	}
	m, err := startMember(ctx, s, ic, "", embed.ClusterStateFlagExisting, resp.Member.ID)
	if err != nil {
		t.Fatalf("start learner: %v", err)
	}
	if err := m.Stop(); err != nil {
		t.Fatalf("stop learner: %v", err)
	}
}

// restartedLearner starts m1 and restarts m2 (MaxVoters maxVoters) from
// the data of a learner of m1's cluster that died before its promotion.
func restartedLearner(t *testing.T, ctx context.Context, maxVoters int) (m1, m2 *Member, cfg Config) {
	t.Helper()
	m1 = startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	cfg = FastTestConfig("m2", t.TempDir())
	cfg.MaxVoters = maxVoters
	learnerDataDir(t, ctx, m1, cfg)
	m2 = startT(t, ctx, cfg)
	if !m2.IsLearner() {
		t.Fatal("the restarted member is not a learner: the test prepared no learner")
	}
	return m1, m2, cfg
}

// TestSettlePromotesRestartedLearner: a member whose join died between its
// learner's start and its promotion restarts as a learner; before Settle
// existed it stayed one (holding etcd's one learner slot) until someone
// removed it. Settle promotes it, keeping its member ID.
func TestSettlePromotesRestartedLearner(t *testing.T) {
	ctx := testCtx(t)
	m1, m2, _ := restartedLearner(t, ctx, 3)
	id := m2.ID()
	if err := Settle(ctx, m2); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	cli := clientT(t, m1.ClientURL())
	wantVoters(t, ctx, cli, "m1", "m2")
	for _, m := range members(t, ctx, cli) {
		if m.Name == "m2" && m.ID != id {
			t.Fatalf("m2 is member %x after Settle, want the restarted %x", m.ID, id)
		}
	}
}

// TestSettleGivesTheSeatBack: when the cluster already has MaxVoters
// voters, Settle removes the restarted learner, stops it and deletes its
// member data, so the node goes on as a plain client and a later join
// starts clean.
func TestSettleGivesTheSeatBack(t *testing.T) {
	ctx := testCtx(t)
	m1, m2, cfg := restartedLearner(t, ctx, 1)
	err := Settle(ctx, m2)
	if !errors.Is(err, ErrEnoughVoters) {
		t.Fatalf("Settle = %v, want ErrEnoughVoters", err)
	}
	select {
	case <-m2.Done():
	default:
		t.Fatal("the learner still runs after giving its seat back")
	}
	if HasData(cfg.Dir) {
		t.Fatal("the learner's data was kept")
	}
	wantVoters(t, ctx, clientT(t, m1.ClientURL()), "m1")
}
