package integration

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
)

// freezeResult is what one freeze scenario measured.
type freezeResult struct {
	leaveSeen time.Duration // freeze → first OnNodeLeave about a victim (0: none)
	repaired  time.Duration // thaw → every node settled again
	recs      []record      // everything every node observed from the freeze on
	frozen    time.Time     // when the victims were stopped
	thawed    time.Time     // when they were resumed
}

// faultDelay is the rebalance delay of the fault tests' clusters: longer
// than any fault they inject, so every victim comes back within it.
const faultDelay = 30 * time.Second

// formFour forms the fault tests' standard cluster: four node processes on
// embedded etcd (n1 bootstraps; three run etcd voters, one is a plain
// client: which, depends on the order their background joins ended, see
// etcdRoles), LeaseTTL ttl, 64 partitions, RF 3, a rebalance delay of
// faultDelay, and the extra cknode flags given. It returns once the map
// settled and etcd has its three voters and no learner.
func formFour(t testing.TB, ttl time.Duration, extra ...string) (*procCluster, []*nodeProc) {
	flags := append([]string{"-ttl", ttl.String(), "-partitions", "64", "-rf", "3", "-voters", "3",
		"-rebalance-delay", faultDelay.String()}, extra...)
	c := newProcCluster(t, flags...)
	var nodes []*nodeProc
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		nodes = append(nodes, c.add(id))
	}
	c.waitSettled(nodes, 60*time.Second)
	checkVoters(t, nodes, 3)
	return c, nodes
}

// freezeFor SIGSTOPs the victims for d, SIGCONTs them, and waits until the
// cluster has settled again with all of nodes.
func freezeFor(t testing.TB, c *procCluster, nodes []*nodeProc, d time.Duration, victims ...*nodeProc) freezeResult {
	begin := time.Now()
	for _, v := range victims {
		v.freeze()
	}
	time.Sleep(d)
	for _, v := range victims {
		v.thaw()
	}
	thawed := time.Now()
	done := c.waitSettled(nodes, 60*time.Second)
	recs := c.log.since(begin)
	res := freezeResult{repaired: done.Sub(thawed), recs: recs, frozen: begin, thawed: thawed}
	ids := idsOf(victims)
	if at := first(recs, func(r record) bool { return r.Kind == "leave" && contains(ids, r.Node) }); !at.IsZero() {
		res.leaveSeen = at.Sub(begin)
	}
	t.Logf("freeze of %v for %v: leave seen after %v, settled %v after the thaw; records: %s",
		ids, d, res.leaveSeen, res.repaired, summary(recs))
	var seen any = "none"
	if res.leaveSeen > 0 {
		seen = res.leaveSeen
	}
	reliability.Summary(t, map[string]any{"frozen_for": d, "leave_seen": seen, "settled_after_thaw": res.repaired,
		"maps_observed": countKind(recs, "map"), "primary_conflicts": len(primaryConflicts(recs)), "no_source": len(noSource(recs)),
		"collateral_leaves": len(leavesOf(recs, ids...))})
	return res
}

func idsOf(nodes []*nodeProc) []string {
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.id)
	}
	return ids
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// checkFreeze asserts what a freeze of the victims may cost: no other node
// leaves, no partition is said to be without a source, nothing is copied
// to any node but the victims (they come back within the rebalance delay
// to their own slots, as the same process: a catch-up), and no two
// observations disagree on a partition's primary for one epoch.
func checkFreeze(t *testing.T, res freezeResult, victims ...*nodeProc) {
	ids := idsOf(victims)
	if l := leavesOf(res.recs, ids...); len(l) > 0 {
		t.Errorf("collateral leaves while %v were frozen: %d\n%s", ids, len(l), limit(l, 10))
	}
	if l := noSource(res.recs); len(l) > 0 {
		t.Errorf("partitions handed out without a source although replicas lived: %d\n%s", len(l), limit(l, 10))
	}
	if l := movesToOthers(res.recs, ids...); len(l) > 0 {
		t.Errorf("data copied to nodes that never left, although the victims came back within the delay: %d\n%s", len(l), limit(l, 10))
	}
	for _, id := range ids {
		for _, r := range rejoinsOf(res.recs, id) {
			if !r.Same || !r.Kept {
				t.Errorf("%s saw %s rejoin as another process (same=%v kept=%v); it only froze", r.Self, id, r.Same, r.Kept)
			}
		}
	}
	for _, r := range moves(res.recs) {
		if !r.CatchUp {
			t.Errorf("%s: partition %d copied to %s without CatchUp; it kept its data", r.Self, r.P, r.Node)
			break
		}
	}
	if l := primaryConflicts(res.recs); len(l) > 0 {
		t.Errorf("two primaries for one (partition, epoch): %d\n%s", len(l), limit(l, 10))
	}
}

// etcdLeader returns the node whose embedded etcd member leads, asking
// each member for its status (over mutual TLS) for up to 10 s: a Status
// call can time out on a loaded machine.
func etcdLeader(t testing.TB, nodes []*nodeProc) *nodeProc {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		for _, n := range nodes {
			if n.etcd == "" {
				continue
			}
			ep := "https://" + n.etcd
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: n.etcdTLS(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cli.Status(ctx, ep)
			cancel()
			cli.Close()
			if err == nil && st.Leader == st.Header.MemberId {
				return n
			}
		}
	}
	t.Fatal("no node runs the etcd leader")
	return nil
}

// voterNotLeading returns a node whose etcd member is a voter but not the
// Raft leader: freezing it leaves etcd its quorum and its leader.
func voterNotLeading(t testing.TB, nodes []*nodeProc) *nodeProc {
	t.Helper()
	leader := etcdLeader(t, nodes)
	voters, _ := etcdRoles(t, nodes)
	for _, n := range voters {
		if n != leader {
			return n
		}
	}
	t.Fatal("no etcd voter but the leader")
	return nil
}

// TestFrozenPlainNode freezes a node without an etcd member for 2×TTL: it
// is noticed by lease expiry, its primaries fail over, and it comes back
// to its own slots as the same process; nothing else is lost.
func TestFrozenPlainNode(t *testing.T) {
	const ttl = 2 * time.Second
	c, nodes := formFour(t, ttl)
	_, plain := etcdRoles(t, nodes)
	victim := plain[0]
	res := freezeFor(t, c, nodes, 2*ttl, victim)
	checkFreeze(t, res, victim)
	if res.leaveSeen == 0 {
		t.Errorf("no node saw %s leave although it was frozen for 2×TTL", victim.id)
	}
	if len(rejoinsOf(res.recs, victim.id)) == 0 {
		t.Errorf("no node saw %s rejoin", victim.id)
	}
}

// TestFrozenVoter freezes a node that hosts an etcd voter (not the etcd
// leader) for 2×TTL: the other nodes keep their membership (issue 9).
func TestFrozenVoter(t *testing.T) {
	const ttl = 2 * time.Second
	c, nodes := formFour(t, ttl)
	victim := voterNotLeading(t, nodes)
	res := freezeFor(t, c, nodes, 2*ttl, victim)
	checkFreeze(t, res, victim)
}

// TestFrozenEtcdLeader freezes the node that hosts the etcd raft leader
// (and, having bootstrapped, usually the ClusterKit leader) for 3×TTL. The
// others must fail its primaries over while it is frozen, although their
// clients had requests and watches on its member's connections (which a
// freeze leaves open). When it resumes, etcd may revoke every lease that
// expired in its stale view (etcd #15247): every node then loses its
// lease at once, registers again as the same process, and nothing may be
// lost.
func TestFrozenEtcdLeader(t *testing.T) {
	const ttl = 2 * time.Second
	c, nodes := formFour(t, ttl)
	victim := etcdLeader(t, nodes)
	res := freezeFor(t, c, nodes, 3*ttl, victim)
	if at := firstFailover(c.log.since(time.Time{}), victim.id, res.frozen); at.IsZero() || !at.Before(res.thawed) {
		t.Errorf("no node saw %s's primaries fail over while it was frozen (thawed at %s)", victim.id, res.thawed.UTC().Format(time.RFC3339Nano))
		for _, n := range nodes {
			t.Logf("%s's log without etcd's lines:\n%s", n.id, n.logLines())
		}
	}
	// Collateral leaves are etcd's doing here (#15247), not ours: every
	// node that left must come back as the same process, with its data.
	for _, n := range nodes {
		for _, r := range rejoinsOf(res.recs, n.id) {
			if !r.Same || !r.Kept {
				t.Errorf("%s saw %s rejoin as another process; it kept running", r.Self, n.id)
			}
		}
	}
	if l := noSource(res.recs); len(l) > 0 {
		t.Errorf("partitions handed out without a source although every process kept its data: %d\n%s", len(l), limit(l, 10))
	}
	if l := primaryConflicts(res.recs); len(l) > 0 {
		t.Errorf("two primaries for one (partition, epoch): %d\n%s", len(l), limit(l, 10))
	}
	t.Logf("collateral leaves (etcd #15247 when it fires): %d; copies to nodes that never left: %d",
		len(leavesOf(res.recs, victim.id)), len(movesToOthers(res.recs, victim.id)))
}

// TestTwoFrozenNodesEnterMaintenance freezes half the cluster (a voter and
// the plain node) with maintenance above a quarter of the nodes: the
// leader freezes placement, fails primaries over only, and leaves
// maintenance when both are back.
func TestTwoFrozenNodesEnterMaintenance(t *testing.T) {
	const ttl = 2 * time.Second
	c, nodes := formFour(t, ttl, "-maint-share", "0.25")
	_, plain := etcdRoles(t, nodes)
	victims := []*nodeProc{voterNotLeading(t, nodes), plain[0]}
	begin := time.Now()
	res := freezeFor(t, c, nodes, 3*ttl, victims...)
	checkFreeze(t, res, victims...)
	// The map that ends maintenance may come a write after the settled
	// one: give the nodes' records a bound to show it.
	var entered, left bool
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		entered, left = maintenanceSeen(c.log.since(begin))
		if (entered && left) || time.Now().After(deadline) {
			break
		}
	}
	if !entered || !left {
		t.Errorf("maintenance mode entered %v, left %v; want both", entered, left)
		// Maintenance needs both leaves within Options.Maintenance.Window
		// of each other: show when each node saw them.
		for _, r := range c.log.since(begin) {
			if r.Kind == "leave" || r.Kind == "rejoin" || r.Kind == "rb_start" {
				t.Logf("%s at +%v: %s %s %s", r.Self, time.Duration(r.T-begin.UnixNano()), r.Kind, r.Node, r.Reason)
			}
		}
		t.Logf("froze %v at %v", idsOf(victims), begin.UTC().Format(time.RFC3339Nano))
		for _, n := range nodes {
			t.Logf("%s's log without etcd's lines:\n%s", n.id, n.logLines())
		}
	}
}

// firstFailover returns when a node other than victim first saw, after
// from, a partition's primary move off victim (zero: never). recs must
// begin before from, with each partition's primary at that time.
func firstFailover(recs []record, victim string, from time.Time) time.Time {
	primary := map[int]string{}
	for _, r := range recs {
		if r.Kind != "map" || r.Self == victim {
			continue
		}
		at := time.Unix(0, r.T)
		if at.After(from) && primary[r.P] == victim && r.Primary != victim {
			return at
		}
		primary[r.P] = r.Primary
	}
	return time.Time{}
}

// maintenanceSeen reports whether any node's records show maintenance
// mode entered, and left after that.
func maintenanceSeen(recs []record) (entered, left bool) {
	for _, r := range recs {
		if r.Kind == "maint" && r.Status != "" {
			entered = true
		}
		if r.Kind == "maint" && r.Status == "" && entered {
			left = true
		}
	}
	return entered, left
}

// TestKilledNodeBackWithinDelay SIGKILLs the plain node and restarts it
// within the rebalance delay: its primaries fail over at once, no replica
// is placed anywhere else, and the new process (without durable storage)
// receives its own slots again by copy.
func TestKilledNodeBackWithinDelay(t *testing.T) {
	const ttl = 2 * time.Second
	c, nodes := formFour(t, ttl)
	_, plain := etcdRoles(t, nodes)
	victim := plain[0]
	begin := time.Now()
	victim.kill()
	// Wait until the survivors report the failover (or give up after 10 s).
	promoted := func(recs []record) int {
		n := 0
		for _, r := range recs {
			if r.Kind == "change" && r.Promoted {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for promoted(c.log.since(begin)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	failedOver := promoted(c.log.since(begin))
	victim.restart(c.bin)
	victim.waitStarted()
	c.waitSettled(nodes, 60*time.Second)
	recs := c.log.since(begin)
	t.Logf("kill and restart of %s: records %s", victim.id, summary(recs))
	reliability.Summary(t, map[string]any{"failed_over": firstPromotion(recs, begin), "all_agree_after_kill": time.Since(begin),
		"maps_observed": countKind(recs, "map"), "primary_conflicts": len(primaryConflicts(recs)), "no_source": len(noSource(recs)),
		"moves_to_others": len(movesToOthers(recs, victim.id))})
	if failedOver == 0 {
		t.Errorf("no primary failed over before %s came back", victim.id)
	}
	if l := movesToOthers(recs, victim.id); len(l) > 0 {
		t.Errorf("replicas placed on other nodes although %s came back within the delay: %d\n%s", victim.id, len(l), limit(l, 10))
	}
	if l := noSource(recs); len(l) > 0 {
		t.Errorf("partitions without a source although two replicas lived: %d\n%s", len(l), limit(l, 10))
	}
	if l := primaryConflicts(recs); len(l) > 0 {
		t.Errorf("two primaries for one (partition, epoch): %d\n%s", len(l), limit(l, 10))
	}
	for _, r := range rejoinsOf(recs, victim.id) {
		if r.Same || r.Kept {
			t.Errorf("%s saw the new process of %s rejoin as the same one (same=%v kept=%v)", r.Self, victim.id, r.Same, r.Kept)
		}
	}
}
