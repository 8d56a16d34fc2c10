package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/integration/internal/reliability"
)

// The scenarios of issue 10 (embedded etcd that never takes the
// application down), on real node processes. Each failed before the fix:
// the restarted voters' join call needed the quorum they were to restore;
// a member that had removed itself on Stop was refused as "member removed
// from cluster" at its restart; and nodes stopped together failed their
// Stop (remove member: server stopped) or died in etcd (a Status call
// reaching a member being removed). Their timings are benchmarks
// (bench_embedded_test.go).

// TestQuorumLossRestart SIGKILLs two of three voters and restarts both
// together with their original options: the cluster must come back.
func TestQuorumLossRestart(t *testing.T) {
	c, nodes := formEmbedded(t, 4)
	voters, _ := etcdRoles(t, nodes)
	victims := voters[1:]
	for _, n := range victims {
		n.kill()
	}
	begin := time.Now()
	var wg sync.WaitGroup
	for _, n := range victims {
		n.restart(c.bin)
		wg.Go(n.waitStarted)
	}
	wg.Wait()
	done := c.waitSettled(nodes, 60*time.Second)
	t.Logf("quorum loss: all agree %v after the restarts", done.Sub(begin))
	reliability.Summary(t, map[string]any{"all_agree_after_restarts": done.Sub(begin)})
	checkVoters(t, nodes, 3)
}

// TestBootstrapRestartAfterStop stops the bootstrap node gracefully and
// starts it again with exactly its original options (no JoinAddr).
func TestBootstrapRestartAfterStop(t *testing.T) {
	c, nodes := formEmbedded(t, 4)
	nodes[0].gracefulStop(t)
	c.waitSettled(nodes[1:], 60*time.Second)
	nodes[0].restart(c.bin)
	nodes[0].waitStarted()
	c.waitSettled(nodes, 60*time.Second)
	checkVoters(t, nodes, 3)
}

// TestRollingRestart stops and restarts every node in turn, under lookups
// from the test: at the end MaxVoters voters and no learner remain.
func TestRollingRestart(t *testing.T) {
	c, nodes := formEmbedded(t, 4)
	var restarts []time.Duration
	defer func() { reliability.Summary(t, map[string]any{"restart_to_all_agree": restarts}) }()
	for _, n := range nodes {
		begin := time.Now()
		n.gracefulStop(t)
		stopped := time.Now()
		n.restart(c.bin)
		n.waitStarted()
		started := time.Now()
		done := c.waitSettled(nodes, 60*time.Second)
		t.Logf("restart of %s: settled after %v (Stop %v, exit %v, Start %v, settle %v)", n.id, done.Sub(begin),
			n.stopTook(), stopped.Sub(begin), started.Sub(stopped), done.Sub(started))
		restarts = append(restarts, done.Sub(begin))
	}
	checkVoters(t, nodes, 3)
}

// TestAllStopAtOnce SIGTERMs eight embedded nodes together, three rounds:
// no process may crash, every Stop must return nil. After the last round
// every node is started again at once with its original options (docker
// compose down, then up): the cluster must come back with its voters.
func TestAllStopAtOnce(t *testing.T) {
	const rounds = 3
	var all, slowest []time.Duration
	defer func() {
		reliability.Summary(t, map[string]any{"all_exited": all, "slowest_stop": slowest, "rounds": rounds})
	}()
	for round := range rounds {
		c, nodes := formEight(t)
		took := stopAllAtOnce(t, nodes)
		t.Logf("round %d: all 8 exited after %v (slowest Stop %v)", round, took, slowestStop(nodes))
		all, slowest = append(all, took), append(slowest, slowestStop(nodes))
		if round < rounds-1 {
			continue
		}
		for _, n := range nodes {
			n.restart(c.bin)
		}
		for _, n := range nodes {
			n.waitStarted()
		}
		c.waitSettled(nodes, 60*time.Second)
		checkVoters(t, nodes, 3)
	}
}

// formEight starts eight embedded nodes (three etcd voters) and waits
// until they agree.
func formEight(t testing.TB) (*procCluster, []*nodeProc) { return formEmbedded(t, 8) }

// formEmbedded starts n embedded nodes n1…, three of them etcd voters,
// with a 2 s lease and the extra cknode flags, and waits until they agree
// and etcd has its voters and no learner (the nodes' members join in the
// background, so a fault right after the map settled would meet a join
// under way).
func formEmbedded(t testing.TB, n int, extra ...string) (*procCluster, []*nodeProc) {
	c := newProcCluster(t, append([]string{"-ttl", "2s", "-partitions", "64", "-rf", "3", "-voters", "3"}, extra...)...)
	var nodes []*nodeProc
	for i := range n {
		nodes = append(nodes, c.add(fmt.Sprintf("n%d", i+1)))
	}
	c.waitSettled(nodes, 90*time.Second)
	checkVoters(t, nodes, min(n, 3))
	return c, nodes
}

// etcdRoles splits nodes (in their order) into those whose etcd members
// are voters and the others (plain clients, or learners).
func etcdRoles(t testing.TB, nodes []*nodeProc) (voters, others []*nodeProc) {
	t.Helper()
	cli := runningEtcdClient(t, nodes)
	defer cli.Close()
	voter := map[string]bool{}
	for _, m := range listMembers(t, cli) {
		voter[m.Name] = !m.IsLearner
	}
	for _, n := range nodes {
		if voter[n.id] {
			voters = append(voters, n)
		} else {
			others = append(others, n)
		}
	}
	return voters, others
}

// stopAllAtOnce SIGTERMs every node together and waits for all to exit,
// failing the test for each one that does not exit 0 (a failed Stop is
// exit 1, a Go panic exit 2). It returns when the last one exited.
func stopAllAtOnce(t testing.TB, nodes []*nodeProc) time.Duration {
	t.Helper()
	begin := time.Now()
	for _, n := range nodes {
		n.term()
	}
	for _, n := range nodes {
		if code := n.waitExit(30 * time.Second); code != 0 {
			t.Errorf("%s exited %d after SIGTERM: Stop: %s\n%s", n.id, code, n.stopErr(), n.stderrTail())
		}
	}
	return time.Since(begin)
}

// slowestStop is the longest Stop of nodes, as they measured it.
func slowestStop(nodes []*nodeProc) time.Duration {
	var d time.Duration
	for _, n := range nodes {
		d = max(d, n.stopTook())
	}
	return d
}

// checkVoters asks the embedded etcd of the running nodes for its member
// list until it has want voters and no learner (a join in the background
// may still be finishing), failing the test after 15 s.
func checkVoters(t testing.TB, nodes []*nodeProc, want int) {
	t.Helper()
	cli := runningEtcdClient(t, nodes)
	defer cli.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		voters, learners, err := countMembers(cli)
		if err == nil && voters == want && learners == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("etcd members: %d voters and %d learners (%v), want %d voters and no learner", voters, learners, err, want)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if resp, err := cli.MemberList(ctx); err == nil {
				for _, m := range resp.Members {
					t.Logf("member %x %q learner=%v peers %v clients %v", m.ID, m.Name, m.IsLearner, m.PeerURLs, m.ClientURLs)
				}
			}
			for _, n := range nodes {
				t.Logf("%s's etcd membership log:\n%s", n.id, n.logLines("etcd", "member", "learner", "voter", "quorum"))
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runningEtcdClient is a client of the embedded etcd of the running nodes;
// the caller closes it.
func runningEtcdClient(t testing.TB, nodes []*nodeProc) *clientv3.Client {
	t.Helper()
	var eps []string
	var tlsCfg *tls.Config
	for _, n := range nodes {
		if n.running() {
			eps = append(eps, "https://"+n.etcd)
			if tlsCfg == nil {
				tlsCfg = n.etcdTLS()
			}
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsCfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// listMembers is etcd's member list, failing the test if etcd does not
// answer within 5 s.
func listMembers(t testing.TB, cli *clientv3.Client) []*etcdserverpb.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatalf("etcd member list: %v", err)
	}
	return resp.Members
}

// countMembers counts etcd's voters and learners.
func countMembers(cli *clientv3.Client) (voters, learners int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, m := range resp.Members {
		if m.IsLearner {
			learners++
		} else {
			voters++
		}
	}
	return voters, learners, nil
}
