package integration

import (
	"testing"
	"time"
)

// freezeResult is what one freeze scenario measured.
type freezeResult struct {
	leaveSeen time.Duration // freeze → first OnNodeLeave about the victim (0: none)
	repaired  time.Duration // thaw → every node settled again
	recs      []record      // everything every node observed from the freeze on
}

// formFour forms the fault tests' standard cluster: four node processes on
// embedded etcd (n1 bootstraps; n1–n3 run etcd voters, n4 is a plain
// client), LeaseTTL ttl, 64 partitions, RF 3.
func formFour(t *testing.T, ttl time.Duration) (*procCluster, []*nodeProc) {
	c := newProcCluster(t, "-ttl", ttl.String(), "-partitions", "64", "-rf", "3", "-voters", "3")
	var nodes []*nodeProc
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		nodes = append(nodes, c.add(id))
	}
	c.waitSettled(nodes, 60*time.Second)
	return c, nodes
}

// freezeFor SIGSTOPs victim for d, SIGCONTs it, and waits until the
// cluster has settled again with all of nodes.
func freezeFor(t *testing.T, c *procCluster, nodes []*nodeProc, victim *nodeProc, d time.Duration) freezeResult {
	begin := time.Now()
	victim.freeze()
	time.Sleep(d)
	victim.thaw()
	thawed := time.Now()
	done := c.waitSettled(nodes, 60*time.Second)
	recs := c.log.since(begin)
	res := freezeResult{repaired: done.Sub(thawed), recs: recs}
	if at := first(recs, func(r record) bool { return r.Kind == "leave" && r.Node == victim.id }); !at.IsZero() {
		res.leaveSeen = at.Sub(begin)
	}
	t.Logf("freeze of %s for %v: leave seen after %v, settled %v after the thaw; records: %s",
		victim.id, d, res.leaveSeen, res.repaired, summary(recs))
	return res
}

// checkFreeze asserts what a freeze of victim may cost the others: no
// other node leaves, no partition is said to be without a source, and no
// two observations disagree on a partition's primary for one epoch.
func checkFreeze(t *testing.T, res freezeResult, victim *nodeProc) {
	if l := leavesOf(res.recs, victim.id); len(l) > 0 {
		t.Errorf("collateral leaves while %s was frozen: %d\n%s", victim.id, len(l), limit(l, 10))
	}
	if l := noSource(res.recs); len(l) > 0 {
		t.Errorf("partitions handed out without a source although replicas lived: %d\n%s", len(l), limit(l, 10))
	}
	if l := primaryConflicts(res.recs); len(l) > 0 {
		t.Errorf("two primaries for one (partition, epoch): %d\n%s", len(l), limit(l, 10))
	}
}

// TestFrozenPlainNode freezes a node without an etcd member for 2×TTL: it
// is noticed by lease expiry and nothing else is lost.
func TestFrozenPlainNode(t *testing.T) {
	const ttl = 2 * time.Second
	c, nodes := formFour(t, ttl)
	victim := nodes[3]
	res := freezeFor(t, c, nodes, victim, 2*ttl)
	checkFreeze(t, res, victim)
	if res.leaveSeen == 0 {
		t.Errorf("no node saw %s leave although it was frozen for 2×TTL", victim.id)
	}
}
