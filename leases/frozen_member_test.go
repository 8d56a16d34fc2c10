package leases_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/leases"
)

// newMultiClient returns a client of every endpoint with clusterkit's gRPC
// keep-alive settings, closed by t.Cleanup.
func newMultiClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("new client of %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// renewalGaps samples r.LastRenewal every 5 ms for d and returns the
// largest time between two acknowledged keep-alives seen meanwhile
// (counting the time from the last one to the end of d). It returns early
// if r ends.
func renewalGaps(r *leases.Registration, d time.Duration) (maxGap time.Duration, renewals int) {
	last := r.LastRenewal()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-r.Done():
			return max(maxGap, time.Since(last)), renewals
		case <-end:
			return max(maxGap, time.Since(last)), renewals
		case <-tick.C:
			if at := r.LastRenewal(); at.After(last) {
				maxGap = max(maxGap, at.Sub(last))
				last = at
				renewals++
			}
		}
	}
}

// TestKeepAliveSurvivesFrozenMember freezes (SIGSTOP) each member of a
// 3-member etcd cluster in turn, for 2 × TTL, while a Registration on a
// client of all three members keeps its lease: a frozen member keeps its
// TCP connections open and answers nothing, so a keep-alive routed to it
// must not hold the renewal up until the lease expires (issue 9). Each
// freeze hits the member the keep-alives use at that moment: they start on
// the first endpoint and move to the next one when it stalls.
func TestKeepAliveSurvivesFrozenMember(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	cli := newMultiClient(t, c.Endpoints())
	const ttl = 2 * time.Second
	r := mustRegister(t, cli, memberKey, "v", ttl)

	for i, m := range c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		leader := c.Leader(ctx, cli)
		cancel()
		m.Freeze()
		gap, renewals := renewalGaps(r, 2*ttl)
		m.Thaw()
		t.Logf("member %d (leader: %v) frozen for %s: %d renewals, longest gap %s (TTL %s)",
			i, i == leader, 2*ttl, renewals, gap.Round(time.Millisecond), ttl)
		select {
		case <-r.Done():
			t.Fatalf("member %d (leader: %v) frozen: the registration ended: %v", i, i == leader, r.Err())
		default:
		}
		// Read through a member that was not frozen.
		_, lease, ok := getKey(t, etcdtest.NewClient(t, c.Members[(i+1)%len(c.Members)].ClientURL), memberKey)
		if !ok || lease != r.LeaseID() {
			t.Fatalf("member %d frozen: key present %v with lease %x, want lease %x", i, ok, lease, r.LeaseID())
		}
	}
}
