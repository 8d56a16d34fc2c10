package election

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/leases"
)

// register registers key on cli with ttl, closed by t.Cleanup.
func register(t *testing.T, cli *clientv3.Client, key string, ttl time.Duration) *leases.Registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	r, err := leases.Register(ctx, cli, key, []byte(key), ttl)
	if err != nil {
		t.Fatalf("register %s: %v", key, err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// TestLeadershipOnRegistrationSurvivesFrozenMember: a leader that campaigns
// on its membership lease (as clusterkit does: one lease, one renewer)
// keeps leading while one member of a 3-member etcd cluster (the raft
// leader, or a follower), the one its client talks to first, is frozen
// (SIGSTOP) for 2 × TTL, and a waiting candidate does not lead (issue 9).
//
// A resumed old raft leader may revoke every lease right after the thaw
// (etcd #15247, see leases.TestKeepAliveSurvivesFrozenMember): then the
// leadership must end with ErrElectionLost.
func TestLeadershipOnRegistrationSurvivesFrozenMember(t *testing.T) {
	for _, target := range []string{"leader", "follower"} {
		t.Run(target, func(t *testing.T) {
			c := etcdtest.StartCluster(t, 3)
			ctx, cancel := context.WithTimeout(context.Background(), eventually)
			defer cancel()
			frozen := c.Leader(ctx, etcdtest.NewClusterClient(t, c.Endpoints()...))
			if target == "follower" {
				frozen = (frozen + 1) % len(c.Members)
			}
			eps := c.Endpoints()
			eps = append([]string{eps[frozen]}, slices.Delete(slices.Clone(eps), frozen, frozen+1)...)
			const ttl = 2 * time.Second
			cliA := etcdtest.NewClusterClient(t, eps...)
			regA := register(t, cliA, "/clusterkit/test/members/a", ttl)
			a := await(t, campaignOnLeaseAsync(t, context.Background(), cliA, regA.LeaseID(), "a", WithLeaseDone(regA.Done())), "a")
			if a.err != nil {
				t.Fatalf("a: %v", a.err)
			}
			cliB := etcdtest.NewClusterClient(t, eps...)
			regB := register(t, cliB, "/clusterkit/test/members/b", ttl)
			chB := campaignOnLeaseAsync(t, context.Background(), cliB, regB.LeaseID(), "b", WithLeaseDone(regB.Done()))
			other := newClient(t, eps[1])
			waitFor(t, "b queued", func() bool { return countKeys(t, other) == 2 })

			c.Members[frozen].Freeze()
			notYet(t, chB, 2*ttl, "b while a member is frozen")
			cur := current(t, other)
			c.Members[frozen].Thaw()
			if err := a.l.Context().Err(); err != nil {
				t.Fatalf("%s frozen: a's leadership ended: %v (registration: %v)", target, context.Cause(a.l.Context()), regA.Err())
			}
			for _, r := range []*leases.Registration{regA, regB} {
				if err := r.Err(); err != nil {
					t.Fatalf("%s frozen: registration %s ended: %v", target, r.Key(), err)
				}
			}
			if cur.Key != a.l.Key() {
				t.Fatalf("%s frozen: Current() = %+v, want a (%s)", target, cur, a.l.Key())
			}

			// After the thaw: a fenced Txn that the balancer sends to the
			// thawed member may wait for etcd's request timeout (a stale
			// leader's proposal is dropped when it steps down), so retry
			// with short timeouts.
			thawed := time.Now()
			var err error
			waitFor(t, "a fenced Txn or the end of a's leadership", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err = a.l.Txn(ctx, nil, clientv3.OpPut("/clusterkit/test/assignment", "a"))
				return err == nil || errors.Is(err, ErrNotLeader)
			})
			switch {
			case err == nil:
				t.Logf("%s frozen for %s: a still leads; its first fenced Txn after the thaw took %v", target, 2*ttl, time.Since(thawed).Round(time.Millisecond))
			case target == "leader":
				wantCause(t, "a's leadership after the resumed old leader revoked its lease", context.Cause(a.l.Context()), ErrElectionLost)
				t.Logf("the resumed old leader revoked a's lease (etcd #15247): %v", context.Cause(a.l.Context()))
			default:
				t.Fatalf("%s frozen and thawed: a's fenced Txn: %v (cause %v)", target, err, context.Cause(a.l.Context()))
			}
		})
	}
}
