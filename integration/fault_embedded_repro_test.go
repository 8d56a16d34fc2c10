//go:build faultrepro

package integration

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The scenarios of issue 10 (embedded etcd that never takes the
// application down). They fail on the code before the fix.

// TestQuorumLossRestart SIGKILLs two of three voters and restarts both
// together with their original options: the cluster must come back.
func TestQuorumLossRestart(t *testing.T) {
	c, nodes := formFour(t, 2*time.Second)
	nodes[1].kill()
	nodes[2].kill()
	begin := time.Now()
	var wg sync.WaitGroup
	for _, n := range nodes[1:3] {
		n.restart(c.bin)
		wg.Go(n.waitStarted)
	}
	wg.Wait()
	done := c.waitSettled(nodes, 60*time.Second)
	t.Logf("quorum loss: all agree %v after the restarts", done.Sub(begin))
	checkVoters(t, nodes, 3)
}

// TestBootstrapRestartAfterStop stops the bootstrap node gracefully and
// starts it again with exactly its original options (no JoinAddr).
func TestBootstrapRestartAfterStop(t *testing.T) {
	c, nodes := formFour(t, 2*time.Second)
	nodes[0].term()
	if code := nodes[0].waitExit(30 * time.Second); code != 0 {
		t.Fatalf("graceful stop of n1 exited %d\n%s", code, nodes[0].tail())
	}
	c.waitSettled(nodes[1:], 60*time.Second)
	nodes[0].restart(c.bin)
	nodes[0].waitStarted()
	c.waitSettled(nodes, 60*time.Second)
	checkVoters(t, nodes, 3)
}

// TestRollingRestart stops and restarts every node in turn, under lookups
// from the test: at the end MaxVoters voters and no learner remain.
func TestRollingRestart(t *testing.T) {
	c, nodes := formFour(t, 2*time.Second)
	for _, n := range nodes {
		begin := time.Now()
		n.term()
		if code := n.waitExit(30 * time.Second); code != 0 {
			t.Fatalf("graceful stop of %s exited %d\n%s", n.id, code, n.tail())
		}
		n.restart(c.bin)
		n.waitStarted()
		done := c.waitSettled(nodes, 60*time.Second)
		t.Logf("restart of %s: settled after %v", n.id, done.Sub(begin))
	}
	checkVoters(t, nodes, 3)
}

// TestAllStopAtOnce SIGTERMs eight embedded nodes together: no process
// may crash, every Stop must return nil.
func TestAllStopAtOnce(t *testing.T) {
	for round := range 2 {
		c := newProcCluster(t, "-ttl", "2s", "-partitions", "64", "-rf", "3", "-voters", "3")
		var nodes []*nodeProc
		for _, id := range []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"} {
			nodes = append(nodes, c.add(id))
		}
		c.waitSettled(nodes, 90*time.Second)
		begin := time.Now()
		for _, n := range nodes {
			n.term()
		}
		for _, n := range nodes {
			if code := n.waitExit(30 * time.Second); code != 0 {
				t.Errorf("round %d: %s exited %d after SIGTERM: Stop: %s\n%s", round, n.id, code, n.stopErr(), n.stderrTail())
			}
		}
		t.Logf("round %d: all 8 exited after %v", round, time.Since(begin))
	}
}

// checkVoters asks the embedded etcd of the running nodes for its member
// list until it has want voters and no learner (a join in the background
// may still be finishing), failing the test after 15 s.
func checkVoters(t *testing.T, nodes []*nodeProc, want int) {
	t.Helper()
	var eps []string
	for _, n := range nodes {
		if n.running() {
			eps = append(eps, "http://"+n.etcd)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		voters, learners, err := countMembers(cli)
		if err == nil && voters == want && learners == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("etcd members: %d voters and %d learners (%v), want %d voters and no learner", voters, learners, err, want)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
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
