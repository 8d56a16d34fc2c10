package etcdtest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	RunMemberIfChild()
	goleak.VerifyTestMain(m)
}

func TestRestartKeepsData(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := s.Client(t)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	s.Stop()
	s.Stop() // idempotent
	s.Restart()
	resp, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("got %v, want k=v", resp.Kvs)
	}
}

// TestClusterFreeze: a 3-member process cluster serves writes while its
// leader is frozen (through the other members, once they elected a new
// leader), and the frozen member answers again after Thaw.
func TestClusterFreeze(t *testing.T) {
	c := StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := NewClient(t, c.Endpoints()...)
	if _, err := cli.Put(ctx, "k", "1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	leader := c.Leader(ctx, cli)
	if leader < 0 {
		t.Fatalf("no leader")
	}
	frozen := c.Members[leader]
	frozen.Freeze()
	if !frozen.IsFrozen() {
		t.Fatalf("IsFrozen after Freeze = false")
	}
	if next := c.Leader(ctx, cli); next < 0 || next == leader {
		t.Fatalf("leader after freezing member %d: %d, want another one", leader, next)
	}
	other := NewClient(t, c.Members[(leader+1)%3].ClientURL)
	if _, err := other.Put(ctx, "k", "2"); err != nil {
		t.Fatalf("put with the leader frozen: %v", err)
	}
	frozen.Thaw()
	back := NewClient(t, frozen.ClientURL)
	for {
		resp, err := back.Get(ctx, "k")
		if err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == "2" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("thawed member: got %v, %v; want k=2", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
