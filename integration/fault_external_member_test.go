package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// TestFrozenExternalEtcdMember runs four nodes on an external 3-member
// etcd, freezes the member that leads etcd and SIGKILLs the ClusterKit
// leader at once: the others must elect a new leader and fail the dead
// node's primaries over while the member is still frozen, although some
// of their requests and watches were on its open connections (a frozen
// process keeps them open; gRPC alone would give them up after 10 s or
// more).
func TestFrozenExternalEtcdMember(t *testing.T) {
	const ttl = 2 * time.Second
	ec := etcdtest.StartCluster(t, 3)
	c := newProcCluster(t, "-ttl", ttl.String(), "-partitions", "64", "-rf", "3", "-rebalance-delay", "1s")
	c.etcd = strings.Join(ec.Endpoints(), ",")
	var nodes []*nodeProc
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		nodes = append(nodes, c.add(id))
	}
	c.waitSettled(nodes, 60*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leading := ec.Leader(ctx, etcdtest.NewClient(t, ec.Endpoints()...))
	if leading < 0 {
		t.Fatal("etcd names no leader")
	}
	view, err := nodes[0].view(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var victim *nodeProc
	var survivors []*nodeProc
	for _, n := range nodes {
		if n.id == view.Leader {
			victim = n
		} else {
			survivors = append(survivors, n)
		}
	}
	if victim == nil {
		t.Fatalf("no node is the ClusterKit leader %q", view.Leader)
	}

	member := ec.Members[leading]
	begin := time.Now()
	member.Freeze()
	victim.kill()
	time.Sleep(4 * ttl)
	thawed := time.Now()
	member.Thaw()
	c.waitSettled(survivors, 60*time.Second)

	at := firstFailover(c.log.since(time.Time{}), victim.id, begin)
	failedOver := "never"
	if !at.IsZero() {
		failedOver = at.Sub(begin).Round(time.Millisecond).String()
	}
	recs := c.log.since(begin)
	reliability.Summary(t, map[string]any{"frozen_for": thawed.Sub(begin), "failed_over": failedOver,
		"primary_conflicts": len(primaryConflicts(recs)), "no_source": len(noSource(recs))})
	if at.IsZero() || !at.Before(thawed) {
		t.Errorf("%s's primaries failed over %s after the kill; want before the etcd member resumed (%v)", victim.id, failedOver, thawed.Sub(begin))
		for _, n := range survivors {
			t.Logf("%s's log:\n%s", n.id, n.logLines())
		}
	}
	if l := primaryConflicts(recs); len(l) > 0 {
		t.Errorf("two primaries for one (partition, epoch): %d\n%s", len(l), limit(l, 10))
	}
	if l := noSource(recs); len(l) > 0 {
		t.Errorf("partitions handed out without a source although replicas lived: %d\n%s", len(l), limit(l, 10))
	}
}
