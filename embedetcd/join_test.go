package embedetcd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// members lists the cluster's members, retrying briefly.
func members(t *testing.T, ctx context.Context, cli *clientv3.Client, opts ...clientv3.OpOption) []*etcdserverpb.Member {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var resp *clientv3.MemberListResponse
		resp, err = cli.MemberList(cctx, opts...)
		cancel()
		if err == nil {
			return resp.Members
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("member list: %v", err)
	return nil
}

// voterNames returns the sorted names of the voters and the number of
// learners.
func voterNames(ms []*etcdserverpb.Member) (names []string, learners int) {
	for _, m := range ms {
		if m.IsLearner {
			learners++
			continue
		}
		names = append(names, m.Name)
	}
	sort.Strings(names)
	return names, learners
}

func wantVoters(t *testing.T, ctx context.Context, cli *clientv3.Client, want ...string) {
	t.Helper()
	names, learners := voterNames(members(t, ctx, cli))
	sort.Strings(want)
	if strings.Join(names, ",") != strings.Join(want, ",") || learners != 0 {
		t.Fatalf("voters %v and %d learners, want voters %v and no learner", names, learners, want)
	}
}

func TestJoinThreeMembersThenOneStops(t *testing.T) {
	for _, relaxed := range []bool{false, true} {
		name := "strict"
		if relaxed {
			name = "relaxed"
		}
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			cfg := func(n string) Config {
				c := FastTestConfig(n, t.TempDir())
				c.DisableStrictReconfigCheck = relaxed
				return c
			}
			begin := time.Now()
			m1 := startT(t, ctx, cfg("m1"))
			m2 := joinT(t, ctx, cfg("m2"), m1.ClientURL())
			m3 := joinT(t, ctx, cfg("m3"), m1.ClientURL(), m2.ClientURL())
			t.Logf("figure: 3-member cluster (%s reconfig check) formed in %v", name, time.Since(begin))

			cli := clientT(t, m2.ClientURL(), m3.ClientURL())
			wantVoters(t, ctx, cli, "m1", "m2", "m3")
			putEventually(t, ctx, cli, "before", "1")

			// Stop the bootstrap member (often the leader): the other two
			// keep a quorum and accept writes.
			if err := m1.Stop(); err != nil {
				t.Fatalf("Stop m1: %v", err)
			}
			stopped := time.Now()
			putEventually(t, ctx, clientT(t, m2.ClientURL()), "after", "2")
			t.Logf("figure: first write after stopping m1 took %v", time.Since(stopped))
			resp, err := clientT(t, m3.ClientURL()).Get(ctx, "after")
			if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "2" {
				t.Fatalf("get via m3 = %v, %v; want after=2", resp, err)
			}
		})
	}
}

func TestJoinConcurrent(t *testing.T) {
	ctx := testCtx(t)
	m1 := startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	cfgs := []Config{FastTestConfig("m2", t.TempDir()), FastTestConfig("m3", t.TempDir())}
	got := make([]*Member, len(cfgs))
	errs := make([]error, len(cfgs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Go(func() {
			<-start
			begin := time.Now()
			got[i], errs[i] = Join(ctx, c, []string{m1.ClientURL()})
			if errs[i] == nil {
				logJoin(t, c.Name, begin, got[i])
			}
		})
	}
	close(start)
	wg.Wait()
	for i, m := range got {
		if m != nil {
			t.Cleanup(func() { _ = m.Stop() })
		}
		if errs[i] != nil {
			t.Errorf("Join(%s): %v", cfgs[i].Name, errs[i])
		}
	}
	if t.Failed() {
		return
	}
	wantVoters(t, ctx, clientT(t, m1.ClientURL()), "m1", "m2", "m3")
}

func TestJoinRestartsFromData(t *testing.T) {
	ctx := testCtx(t)
	m1 := startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	c2 := FastTestConfig("m2", t.TempDir())
	m2 := joinT(t, ctx, c2, m1.ClientURL())
	id := m2.ID()
	putEventually(t, ctx, clientT(t, m2.ClientURL()), "k", "v")
	if err := m2.Stop(); err != nil {
		t.Fatalf("Stop m2: %v", err)
	}

	again := joinT(t, ctx, c2, m1.ClientURL())
	if again.ID() != id {
		t.Fatalf("rejoined member ID = %x, want %x (a restart)", again.ID(), id)
	}
	if !again.joinAdded.IsZero() {
		t.Fatal("rejoin added a new member instead of restarting")
	}
	cli := clientT(t, again.ClientURL())
	wantVoters(t, ctx, cli, "m1", "m2")
	resp, err := cli.Get(ctx, "k", clientv3.WithSerializable()) // served from m2's own data
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get k from restarted m2 = %v, %v; want k=v", resp, err)
	}
}

func TestJoinNameTakenWithoutData(t *testing.T) {
	ctx := testCtx(t)
	m1 := startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	c2 := FastTestConfig("m2", t.TempDir())
	m2 := joinT(t, ctx, c2, m1.ClientURL())
	if err := m2.Stop(); err != nil {
		t.Fatalf("Stop m2: %v", err)
	}

	samePeer := c2
	samePeer.Dir = t.TempDir()
	otherPeer := FastTestConfig("m2", t.TempDir())
	peerOfM1 := FastTestConfig("m9", t.TempDir())
	peerOfM1.PeerAddr = strings.TrimPrefix(m1.PeerURL(), "http://")
	for name, c := range map[string]Config{"same peer URL": samePeer, "other peer URL": otherPeer, "peer URL of m1": peerOfM1} {
		t.Run(name, func(t *testing.T) {
			m, err := Join(ctx, c, []string{m1.ClientURL()})
			if err == nil {
				_ = m.Stop()
				t.Fatal("Join with a taken name and no data succeeded")
			}
			if !errors.Is(err, ErrMemberExists) || !strings.Contains(err.Error(), `"`+c.Name+`"`) {
				t.Fatalf("err = %v, want ErrMemberExists naming %s", err, c.Name)
			}
			t.Logf("error: %v", err)
		})
	}
	// m1 alone has no quorum: read its local view.
	cli := clientT(t, m1.ClientURL())
	if ms := members(t, ctx, cli, clientv3.WithSerializable()); len(ms) != 2 {
		t.Fatalf("cluster has %d members after refused joins, want 2", len(ms))
	}
}

func TestRemovedMemberStopsAndRejoinsWithFreshData(t *testing.T) {
	ctx := testCtx(t)
	m1 := startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	c2 := FastTestConfig("m2", t.TempDir())
	m2 := joinT(t, ctx, c2, m1.ClientURL())
	oldID := m2.ID()

	// Remove the running voter m2. The strict reconfiguration check refuses
	// until m1 has been connected to m2 for 5 s; retry until then.
	cli := clientT(t, m1.ClientURL())
	var err error
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.MemberRemove(cctx, oldID)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("remove m2: %v", err)
	}
	select {
	case <-m2.Done():
	case <-ctx.Done():
		t.Fatal("removed member's Done not closed")
	}
	if err := m2.Err(); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Err() of removed member = %v, want ErrRemoved", err)
	}
	if err := m2.Stop(); err != nil {
		t.Fatalf("Stop removed m2: %v", err)
	}

	again := joinT(t, ctx, c2, m1.ClientURL())
	if again.ID() == oldID {
		t.Fatalf("rejoined removed member kept its old ID %x", oldID)
	}
	aside, _ := filepath.Glob(filepath.Join(c2.Dir, "member.removed-*"))
	if len(aside) != 1 {
		t.Fatalf("moved-aside dirs = %v, want one member.removed-*", aside)
	}
	wantVoters(t, ctx, cli, "m1", "m2")
}

func TestJoinRollsBackWhenStartFails(t *testing.T) {
	ctx := testCtx(t)
	m1 := startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	c2 := FastTestConfig("m2", t.TempDir())
	// Hold m2's peer port so that its learner is added but etcd cannot start.
	l, err := net.Listen("tcp", c2.PeerAddr)
	if err != nil {
		t.Fatalf("hold peer port: %v", err)
	}
	m, err := Join(ctx, c2, []string{m1.ClientURL()})
	if err == nil {
		_ = m.Stop()
		t.Fatal("Join succeeded although its peer port was taken")
	}
	if !errors.Is(err, ErrJoin) {
		t.Fatalf("err = %v, want ErrJoin", err)
	}
	t.Logf("error: %v", err)
	cli := clientT(t, m1.ClientURL())
	if ms := members(t, ctx, cli); len(ms) != 1 {
		t.Fatalf("cluster has %d members after a failed join, want 1 (learner not removed)", len(ms))
	}
	if _, err := os.Stat(filepath.Join(c2.Dir, "member")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("member dir after failed join: stat err = %v, want not exist", err)
	}

	// Nothing is wedged: the same member joins once its port is free.
	l.Close()
	joinT(t, ctx, c2, m1.ClientURL())
	wantVoters(t, ctx, cli, "m1", "m2")
}

func TestJoinReusesNeverStartedLearner(t *testing.T) {
	ctx := testCtx(t)
	m1 := startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	c2 := FastTestConfig("m2", t.TempDir())
	// A learner added for m2's peer URL by an earlier attempt that died
	// before starting it.
	cli := clientT(t, m1.ClientURL())
	resp, err := cli.MemberAddAsLearner(ctx, []string{"http://" + c2.PeerAddr})
	if err != nil {
		t.Fatalf("add learner: %v", err)
	}
	m2 := joinT(t, ctx, c2, m1.ClientURL())
	if m2.ID() != resp.Member.ID {
		t.Fatalf("joined member ID = %x, want the leftover learner's %x", m2.ID(), resp.Member.ID)
	}
	wantVoters(t, ctx, cli, "m1", "m2")
}

func TestJoinInvalidInput(t *testing.T) {
	c := FastTestConfig("m2", t.TempDir())
	for name, eps := range map[string][]string{
		"no endpoints": nil,
		"no scheme":    {"127.0.0.1:2379"},
		"empty":        {""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Join(context.Background(), c, eps)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Join(%q) err = %v, want ErrInvalidConfig", eps, err)
			}
		})
	}
}

func TestJoinUnreachableEndsWithContext(t *testing.T) {
	noLeaksT(t)
	// A port with nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := FastTestConfig("m2", t.TempDir())
	m, err := Join(ctx, c, []string{"http://" + addr})
	if err == nil {
		_ = m.Stop()
		t.Fatal("Join to an unreachable cluster succeeded")
	}
	if !errors.Is(err, ErrJoin) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrJoin and context.DeadlineExceeded", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "member")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("member dir after failed join: stat err = %v, want not exist", err)
	}
}

func TestJoinStaleDataDirIsMovedAside(t *testing.T) {
	ctx := testCtx(t)
	c1 := FastTestConfig("m1", t.TempDir())
	c1.DisableStrictReconfigCheck = true // remove m2 at once
	m1 := startT(t, ctx, c1)
	cli := clientT(t, m1.ClientURL())
	c2 := FastTestConfig("m2", t.TempDir())
	m2 := joinT(t, ctx, c2, m1.ClientURL())
	if _, err := cli.MemberRemove(ctx, m2.ID()); err != nil {
		t.Fatalf("remove m2: %v", err)
	}
	<-m2.Done()
	_ = m2.Stop()

	// The same name and peer URL join again from another data dir, so the
	// cluster knows "m2" under a new ID; then that process stops.
	fresh := c2
	fresh.Dir = t.TempDir()
	newer := joinT(t, ctx, fresh, m1.ClientURL())
	if err := newer.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	// The first data dir (the old ID) must not be reused.
	m, err := Join(ctx, c2, []string{m1.ClientURL()})
	if err == nil {
		_ = m.Stop()
		t.Fatal("Join with a stale data dir succeeded")
	}
	if !errors.Is(err, ErrMemberExists) {
		t.Fatalf("err = %v, want ErrMemberExists", err)
	}
	t.Logf("error: %v", err)
	if aside, _ := filepath.Glob(filepath.Join(c2.Dir, "member.stale-*")); len(aside) != 1 {
		t.Fatalf("moved-aside dirs = %v, want one member.stale-*", aside)
	}
}

func TestJoinRollsBackWhenPromotionIsCutShort(t *testing.T) {
	ctx := testCtx(t)
	m1 := startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	c2 := FastTestConfig("m2", t.TempDir())
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The learner has started; the caller gives up before its promotion.
	m, err := join(jctx, c2, []string{m1.ClientURL()}, cancel)
	if err == nil {
		_ = m.Stop()
		t.Fatal("Join succeeded although its context ended before the promotion")
	}
	if !errors.Is(err, ErrJoin) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrJoin and context.Canceled", err)
	}
	t.Logf("error: %v", err)
	cli := clientT(t, m1.ClientURL())
	if ms := members(t, ctx, cli); len(ms) != 1 {
		t.Fatalf("cluster has %d members after a cut-short join, want 1 (learner not removed)", len(ms))
	}
	if _, err := os.Stat(filepath.Join(c2.Dir, "member")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("member dir after failed join: stat err = %v, want not exist", err)
	}
	joinT(t, ctx, c2, m1.ClientURL())
	wantVoters(t, ctx, cli, "m1", "m2")
}

func TestStartOfRemovedMemberReportsRemoved(t *testing.T) {
	ctx := testCtx(t)
	cfg := func(n string) Config {
		c := FastTestConfig(n, t.TempDir())
		c.DisableStrictReconfigCheck = true // no 5 s guard in this test
		return c
	}
	m1 := startT(t, ctx, cfg("m1"))
	c2 := cfg("m2")
	m2 := joinT(t, ctx, c2, m1.ClientURL())
	joinT(t, ctx, cfg("m3"), m1.ClientURL())
	if err := m2.Stop(); err != nil {
		t.Fatalf("Stop m2: %v", err)
	}
	cli := clientT(t, m1.ClientURL())
	var err error
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.MemberRemove(cctx, m2.ID())
		cancel()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("remove stopped m2: %v", err)
	}

	// Start (unlike Join) reuses the data dir; the peers refuse the removed
	// member, which stops before it is ready.
	m, err := Start(ctx, c2)
	if err == nil {
		_ = m.Stop()
		t.Fatal("Start of a removed member became ready")
	}
	if !errors.Is(err, ErrRemoved) {
		t.Fatalf("err = %v, want ErrRemoved", err)
	}
	t.Logf("error: %v", err)
	// The removed member's data is set aside: the next Start bootstraps.
	if HasData(c2.Dir) {
		t.Fatal("the removed member's data dir was not set aside")
	}
	aside, _ := filepath.Glob(filepath.Join(c2.Dir, "member.removed-*"))
	if len(aside) != 1 {
		t.Fatalf("set-aside dirs %v, want one member.removed-*", aside)
	}
}

// TestJoinMaxVotersConcurrent: two joins race for the one voter seat left
// under MaxVoters 2; exactly one becomes a voter, the other gets
// ErrEnoughVoters and leaves no learner behind.
func TestJoinMaxVotersConcurrent(t *testing.T) {
	ctx := testCtx(t)
	m1 := startT(t, ctx, FastTestConfig("m1", t.TempDir()))
	var cfgs []Config
	for _, n := range []string{"m2", "m3"} {
		c := FastTestConfig(n, t.TempDir())
		c.MaxVoters = 2
		cfgs = append(cfgs, c)
	}
	got := make([]*Member, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Go(func() { got[i], errs[i] = Join(ctx, c, []string{m1.ClientURL()}) })
	}
	wg.Wait()
	voters := []string{"m1"}
	refused := 0
	for i, m := range got {
		switch {
		case errs[i] == nil:
			t.Cleanup(func() { _ = m.Stop() })
			voters = append(voters, cfgs[i].Name)
		case errors.Is(errs[i], ErrEnoughVoters):
			refused++
			if HasData(cfgs[i].Dir) {
				t.Errorf("%s: refused join left member data", cfgs[i].Name)
			}
		default:
			t.Errorf("Join(%s): %v", cfgs[i].Name, errs[i])
		}
	}
	if refused != 1 {
		t.Fatalf("%d joins refused, want 1 (errors %v)", refused, errs)
	}
	wantVoters(t, ctx, clientT(t, m1.ClientURL()), voters...)
}

// TestCloseClientsFailsOver: after CloseClients a client with another
// endpoint goes on at once (no graceful drain), and the member keeps its
// Raft role, and Stop reports no error for the closed listeners.
func TestCloseClientsFailsOver(t *testing.T) {
	ctx := testCtx(t)
	cfg := func(n string) Config {
		c := FastTestConfig(n, t.TempDir())
		c.DisableStrictReconfigCheck = true
		return c
	}
	m1 := startT(t, ctx, cfg("m1"))
	m2 := joinT(t, ctx, cfg("m2"), m1.ClientURL())
	m3 := joinT(t, ctx, cfg("m3"), m1.ClientURL())
	cli := clientT(t, m1.ClientURL())
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), "k")
	putEventually(t, ctx, cli, "k", "1")
	<-wch
	cli.SetEndpoints(m1.ClientURL(), m2.ClientURL(), m3.ClientURL())
	begin := time.Now()
	m1.CloseClients()
	putEventually(t, ctx, cli, "k", "2")
	select {
	case resp := <-wch:
		// The stream on m1 ended at once; the client's watch resumes on
		// another member.
		t.Logf("watch after CloseClients: %d events, canceled %v, after %v", len(resp.Events), resp.Canceled, time.Since(begin))
	case <-time.After(3 * time.Second):
		t.Fatal("the watch on the closed member did not fail over within 3 s")
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("fail-over took %v", d)
	}
	if len(m1.Members()) != 3 {
		t.Fatalf("m1 knows %d members, want 3", len(m1.Members()))
	}
	if err := m1.Stop(); err != nil {
		t.Fatalf("Stop after CloseClients: %v", err)
	}
}
