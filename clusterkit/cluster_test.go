package clusterkit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/internal/leakcheck"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// TestMain also runs the etcd members of etcdtest.StartCluster, which
// start this binary again.
func TestMain(m *testing.M) {
	etcdtest.RunMemberIfChild()
	leakcheck.Main(m)
}

// externalOptions returns fast test options for a node of an external etcd.
func externalOptions(t *testing.T, srv *etcdtest.Server, id string) clusterkit.Options {
	o := clustertest.Options(t, id)
	o.Etcd.Endpoints = srv.Endpoints()
	return o
}

// formExternal starts n nodes on srv and waits until they agree.
func formExternal(t *testing.T, srv *etcdtest.Server, n int, recs []*recorder) []*clusterkit.ClusterKit {
	t.Helper()
	var nodes []*clusterkit.ClusterKit
	for i := 1; i <= n; i++ {
		var configure func(*clusterkit.ClusterKit)
		if recs != nil {
			r := recs[i-1]
			configure = r.attach
		}
		nodes = append(nodes, clustertest.Start(t, externalOptions(t, srv, fmt.Sprintf("node-%d", i)), configure))
	}
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "%d nodes never agreed", n)
	return nodes
}

func newRecorders(n int) []*recorder {
	recs := make([]*recorder, n)
	for i := range recs {
		recs[i] = &recorder{}
	}
	return recs
}

// assertLookupsAgree checks that every node answers every lookup alike.
func assertLookupsAgree(t *testing.T, nodes []*clusterkit.ClusterKit) {
	t.Helper()
	for k := range 50 {
		key := fmt.Sprintf("key-%d", k)
		want, err := nodes[0].GetPartition(key)
		if err != nil {
			t.Fatalf("GetPartition(%q) on %s: %v", key, nodes[0].GetMyNodeID(), err)
		}
		wantPrimary := nodes[0].GetPrimary(want).ID
		wantNodes := ids(nodes[0].GetNodes(want))
		for _, n := range nodes[1:] {
			got, err := n.GetPartition(key)
			if err != nil {
				t.Fatalf("GetPartition(%q) on %s: %v", key, n.GetMyNodeID(), err)
			}
			if got.Index != want.Index || n.GetPrimary(got).ID != wantPrimary || !slices.Equal(ids(n.GetNodes(got)), wantNodes) {
				t.Fatalf("%s: key %q → partition %d primary %s nodes %v; %s says %d %s %v", n.GetMyNodeID(), key,
					got.Index, n.GetPrimary(got).ID, ids(n.GetNodes(got)), nodes[0].GetMyNodeID(), want.Index, wantPrimary, wantNodes)
			}
		}
		// Exactly one node is primary, and IsReplica matches GetReplicas.
		primaries := 0
		for _, n := range nodes {
			p, _ := n.GetPartition(key)
			if n.IsPrimary(p) {
				primaries++
			}
			isRep := slices.Contains(ids(n.GetReplicas(p)), n.GetMyNodeID())
			if n.IsReplica(p) != isRep {
				t.Fatalf("%s: IsReplica(%d) = %v, GetReplicas says %v", n.GetMyNodeID(), p.Index, n.IsReplica(p), isRep)
			}
		}
		if primaries != 1 {
			t.Fatalf("key %q: %d nodes say they are primary, want 1", key, primaries)
		}
	}
}

func ids(nodes []clusterkit.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

func TestEmbeddedFormationOfThreeByJoins(t *testing.T) {
	var nodes []*clusterkit.ClusterKit
	begin := time.Now()
	for i := 1; i <= 3; i++ {
		o := clustertest.Options(t, fmt.Sprintf("node-%d", i))
		if i > 1 {
			o.JoinAddr = clustertest.Addr(nodes[0])
		}
		start := time.Now()
		nodes = append(nodes, clustertest.Start(t, o, nil))
		registered := time.Now()
		clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "after node-%d joined", i)
		t.Logf("node-%d: Start took %v, then every node agreed after %v", i, registered.Sub(start), time.Since(registered))
		assertLookupsAgree(t, nodes)
	}
	t.Logf("3-node embedded cluster from nothing to one agreed map: %v", time.Since(begin))
	if c := nodes[2].GetCluster(); c.Leader == "" || len(c.Nodes) != 3 {
		t.Fatalf("GetCluster: leader %q, %d nodes; want a leader and 3 nodes", c.Leader, len(c.Nodes))
	}
}

func TestExternalEtcdFormationOfFive(t *testing.T) {
	srv := etcdtest.Start(t)
	var nodes []*clusterkit.ClusterKit
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, clustertest.Start(t, externalOptions(t, srv, fmt.Sprintf("node-%d", i)), nil))
		clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes...) }, "after node-%d joined", i)
		assertLookupsAgree(t, nodes)
	}
	// Balanced: 16 partitions × RF 3 over 5 nodes → 9 or 10 slots, 3 or 4 primaries each.
	for _, n := range nodes {
		slots := len(n.GetPartitionsForNode(n.GetMyNodeID()))
		if slots < 9 || slots > 10 {
			t.Errorf("%s serves %d partitions, want 9 or 10", n.GetMyNodeID(), slots)
		}
	}
}

func TestGracefulStopReportsGracefulShutdown(t *testing.T) {
	srv := etcdtest.Start(t)
	recs := newRecorders(3)
	nodes := formExternal(t, srv, 3, recs)
	if err := nodes[2].Stop(contextTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := nodes[2].Stop(contextTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, r := range recs[:2] {
		clustertest.Eventually(t, 10*time.Second, func() bool {
			return index(r.snapshot(), "leave:node-3:"+string(clusterkit.LeaveGraceful)) >= 0
		}, "no graceful leave of node-3; events %v", r.snapshot())
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(nodes[:2]...) }, "survivors never agreed")
	if _, err := nodes[2].GetPartition("x"); err != nil {
		t.Fatalf("lookups after Stop should keep answering from the last map, got %v", err)
	}
}

func TestCrashReportsLeaseExpiredAndPromotesReplicas(t *testing.T) {
	srv := etcdtest.Start(t)
	recs := newRecorders(4)
	nodes := formExternal(t, srv, 4, recs)
	before := nodes[0].GetCluster()
	crashed := nodes[3]
	halted := time.Now()
	crashed.Halt()
	crashed.Halt() // idempotent
	for _, r := range recs[:3] {
		clustertest.Eventually(t, 10*time.Second, func() bool {
			return index(r.snapshot(), "leave:node-4:"+string(clusterkit.LeaveLeaseExpired)) >= 0
		}, "no lease_expired leave of node-4; events %v", r.snapshot())
	}
	t.Logf("crash → OnNodeLeave on every survivor: %v (lease TTL 2s)", time.Since(halted))
	leave := recs[0].leaveEvents()[0]
	if len(leave.PartitionsOwned)+len(leave.PartitionsReplica) == 0 {
		t.Errorf("leave event lists no partitions: %+v", leave)
	}
	survivors := nodes[:3]
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(survivors...) }, "survivors never agreed")
	t.Logf("crash → repaired map on every survivor: %v", time.Since(halted))
	after := nodes[0].GetCluster()
	for i, p := range after.Partitions {
		old := before.Partitions[i]
		if old.PrimaryNode != "node-4" {
			continue
		}
		if !slices.Contains(old.ReplicaNodes, p.PrimaryNode) {
			t.Errorf("partition %d: new primary %s was not a replica before (replicas %v)", i, p.PrimaryNode, old.ReplicaNodes)
		}
	}
}

func TestRejoinIsReportedBeforeItsRebalance(t *testing.T) {
	srv := etcdtest.Start(t)
	recs := newRecorders(3)
	nodes := formExternal(t, srv, 3, recs)
	o := externalOptions(t, srv, "node-3")
	o.DataDir = t.TempDir()
	if err := nodes[2].Stop(contextTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(nodes[:2]...) }, "survivors never agreed")
	time.Sleep(100 * time.Millisecond)
	back := clustertest.Start(t, o, nil)
	all := []*clusterkit.ClusterKit{nodes[0], nodes[1], back}
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(all...) }, "never agreed after the rejoin")
	// startAfterRejoin returns the index of the first rebalance start after
	// node-3's rejoin in ev (-1: none yet).
	startAfterRejoin := func(ev []string) int {
		rejoin := index(ev, "rejoin:node-3")
		for i, e := range ev {
			if rejoin >= 0 && i > rejoin && strings.HasPrefix(e, "start:") {
				return i
			}
		}
		return -1
	}
	for _, r := range recs[:2] {
		// Hooks run on the dispatcher, after the map that caused them:
		// give the events a bound to arrive once the map agrees.
		clustertest.Eventually(t, 5*time.Second, func() bool { return startAfterRejoin(r.snapshot()) >= 0 }, "no rebalance start after the rejoin; events %v", r.snapshot())
		ev := r.snapshot()
		if index(ev, "rejoin:node-3") < 0 {
			t.Fatalf("no rejoin of node-3; events %v", ev)
		}
		if start := startAfterRejoin(ev); start < 0 {
			t.Fatalf("no rebalance start after the rejoin; events %v", ev)
		}
		re := r.rejoinEvents()[0]
		if re.OfflineDuration <= 0 || len(re.PartitionsBeforeLeave) == 0 || re.LastSeenAt.IsZero() {
			t.Errorf("rejoin event lacks history: %+v", re)
		}
	}
}

func TestSlowHandoffKeepsOldPrimaryServing(t *testing.T) {
	srv := etcdtest.Start(t)
	o1 := externalOptions(t, srv, "node-1")
	o1.ReplicationFactor = 1
	first := clustertest.Start(t, o1, nil)

	release := make(chan struct{})
	var once sync.Once
	calls := make(chan string, 64)
	o2 := externalOptions(t, srv, "node-2")
	o2.ReplicationFactor = 1
	second := clustertest.Start(t, o2, func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			if e.CopyToNode.ID != "node-2" || e.NoSource {
				return nil
			}
			if len(e.CopyFromNodes) != 1 || e.CopyFromNodes[0].ID != "node-1" {
				return fmt.Errorf("copy from %v, want node-1", e.CopyFromNodes)
			}
			calls <- e.PartitionID
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	// Wait until node-2 is receiving, then check that node-1 still serves.
	var moving string
	select {
	case moving = <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("node-2 never received a partition")
	}
	var idx int
	fmt.Sscanf(moving, "partition-%d", &idx)
	p := &clusterkit.Partition{Index: idx}
	for _, n := range []*clusterkit.ClusterKit{first, second} {
		if got := n.GetPrimary(p).ID; got != "node-1" {
			t.Fatalf("%s: while the handoff runs, primary of %s is %s, want node-1", n.GetMyNodeID(), moving, got)
		}
	}
	time.Sleep(200 * time.Millisecond) // still the old primary after a while
	if got := first.GetPrimary(p).ID; got != "node-1" {
		t.Fatalf("primary of %s moved to %s before the handler returned", moving, got)
	}
	if c := first.GetCluster(); !slices.Contains(c.Partitions[idx].IncomingNodes, "node-2") {
		t.Fatalf("%s: incoming %v, want node-2", moving, c.Partitions[idx].IncomingNodes)
	}
	once.Do(func() { close(release) })
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(first, second) }, "never agreed after release")
	if got := first.GetPrimary(p).ID; got != "node-2" {
		t.Fatalf("after the handoff, primary of %s is %s, want node-2", moving, got)
	}
}

func TestNewLeaderFinishesRebalance(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := formExternal(t, srv, 2, nil)
	release := make(chan struct{})
	recs := newRecorders(1)
	third := clustertest.Start(t, externalOptions(t, srv, "node-3"), func(ck *clusterkit.ClusterKit) {
		recs[0].attach(ck)
		clustertest.HoldHandoffs(ck, release)
	})
	clustertest.Eventually(t, 10*time.Second, func() bool {
		return third.GetMetrics().IncomingPartitions > 0
	}, "node-3 never became incoming")
	var leader, other *clusterkit.ClusterKit
	for _, n := range nodes {
		if n.IsLeader() {
			leader = n
		} else {
			other = n
		}
	}
	if leader == nil {
		t.Fatal("no leader among node-1 and node-2")
	}
	if err := leader.Stop(contextTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("stop leader: %v", err)
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return other.IsLeader() || third.IsLeader() }, "no new leader")
	close(release)
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(other, third) }, "the new leader never finished the rebalance")
	clustertest.Eventually(t, 5*time.Second, func() bool {
		ev := recs[0].snapshot()
		for _, e := range ev {
			if len(e) > 9 && e[:9] == "complete:" {
				return true
			}
		}
		return false
	}, "no rebalance completion on node-3: %v", recs[0].snapshot())
}

func TestHooksThatPanicOrCallLookups(t *testing.T) {
	srv := etcdtest.Start(t)
	var mu sync.Mutex
	lookups := 0
	configure := func(ck *clusterkit.ClusterKit) {
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error { panic("boom") })
		ck.OnNodeJoin(func(e *clusterkit.NodeJoinEvent) { panic("boom") })
		ck.OnNodeJoin(func(e *clusterkit.NodeJoinEvent) {
			p, err := ck.GetPartition("k")
			if err != nil {
				return // before the first map
			}
			_ = ck.GetPrimary(p)
			_ = ck.GetReplicas(p)
			_ = ck.GetNodes(p)
			_ = ck.IsPrimary(p) || ck.IsReplica(p)
			_ = ck.GetCluster()
			_ = ck.HealthCheck()
			mu.Lock()
			lookups++
			mu.Unlock()
		})
	}
	o1 := externalOptions(t, srv, "node-1")
	first := clustertest.Start(t, o1, configure)
	o2 := externalOptions(t, srv, "node-2")
	second := clustertest.Start(t, o2, func(ck *clusterkit.ClusterKit) {
		// This node's partition handler panics once, then succeeds: the
		// handoff is retried and completes.
		var n int
		var nmu sync.Mutex
		ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
			nmu.Lock()
			defer nmu.Unlock()
			n++
			if n == 1 {
				panic("first attempt fails")
			}
			return nil
		})
	})
	clustertest.Eventually(t, 15*time.Second, func() bool { return clustertest.Agreed(first, second) }, "never agreed with panicking hooks")
	clustertest.Eventually(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return lookups > 0
	}, "the lookup-calling hook never ran")
	if first.GetMetrics().HookPanics == 0 {
		t.Fatal("no hook panic counted on node-1")
	}
	if second.GetMetrics().HandoffFailures == 0 {
		t.Fatal("no handoff failure counted on node-2")
	}
}

func TestOptionsValidation(t *testing.T) {
	ok := clusterkit.Options{NodeID: "n1", HTTPAddr: "127.0.0.1:0"}
	cases := []struct {
		name  string
		edit  func(*clusterkit.Options)
		field string
	}{
		{"missing NodeID", func(o *clusterkit.Options) { o.NodeID = "" }, "NodeID"},
		{"NodeID with slash", func(o *clusterkit.Options) { o.NodeID = "a/b" }, "NodeID"},
		{"missing HTTPAddr", func(o *clusterkit.Options) { o.HTTPAddr = "" }, "HTTPAddr"},
		{"HTTPAddr without port", func(o *clusterkit.Options) { o.HTTPAddr = "localhost" }, "HTTPAddr"},
		{"JoinAddr port 0", func(o *clusterkit.Options) { o.JoinAddr = "h:0" }, "JoinAddr"},
		{"negative partitions", func(o *clusterkit.Options) { o.PartitionCount = -1 }, "PartitionCount"},
		{"too many partitions", func(o *clusterkit.Options) { o.PartitionCount = clusterkit.MaxPartitionCount + 1 }, "PartitionCount"},
		{"negative RF", func(o *clusterkit.Options) { o.ReplicationFactor = -3 }, "ReplicationFactor"},
		{"bad cluster name", func(o *clusterkit.Options) { o.ClusterName = "a b" }, "ClusterName"},
		{"negative weight", func(o *clusterkit.Options) { o.Weight = -1 }, "Weight"},
		{"lease TTL not whole seconds", func(o *clusterkit.Options) { o.LeaseTTL = 1500 * time.Millisecond }, "LeaseTTL"},
		{"lease TTL too short", func(o *clusterkit.Options) { o.LeaseTTL = 500 * time.Millisecond }, "LeaseTTL"},
		{"probe timeout over interval", func(o *clusterkit.Options) {
			o.HealthCheck = clusterkit.HealthCheckConfig{Enabled: true, Interval: time.Second, Timeout: 2 * time.Second}
		}, "HealthCheck.Timeout"},
		{"negative failure threshold", func(o *clusterkit.Options) { o.HealthCheck.FailureThreshold = -1 }, "HealthCheck"},
		{"bootstrap with external etcd", func(o *clusterkit.Options) {
			o.Bootstrap = true
			o.Etcd.Endpoints = []string{"http://127.0.0.1:2379"}
		}, "Bootstrap"},
		{"empty endpoint", func(o *clusterkit.Options) { o.Etcd.Endpoints = []string{""} }, "Etcd.Endpoints"},
		{"too many voters", func(o *clusterkit.Options) { o.Embedded.MaxVoters = 9 }, "Embedded.MaxVoters"},
		{"election timeout too short", func(o *clusterkit.Options) {
			o.Embedded.TickInterval = 100 * time.Millisecond
			o.Embedded.ElectionTimeout = 200 * time.Millisecond
		}, "Embedded.ElectionTimeout"},
		{"hook concurrency", func(o *clusterkit.Options) { o.HookConcurrency = -1 }, "HookConcurrency"},
		{"empty service name", func(o *clusterkit.Options) { o.Services = map[string]string{"": "x"} }, "Services"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			ck, err := clusterkit.New(o)
			if !errors.Is(err, clusterkit.ErrInvalidOptions) {
				t.Fatalf("New: got %v, want an error wrapping ErrInvalidOptions", err)
			}
			if ck != nil {
				t.Fatal("New returned a node with an error")
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.field)) {
				t.Fatalf("error %q does not name the field %s", err, tc.field)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		ck, err := clusterkit.New(ok)
		if err != nil {
			t.Fatalf("New(minimal options): %v", err)
		}
		if c := ck.GetCluster(); c.PartitionCount != clusterkit.DefaultPartitionCount || c.ReplicationFactor != clusterkit.DefaultReplicationFactor || c.Name != clusterkit.DefaultClusterName {
			t.Fatalf("defaults: got %d partitions, RF %d, name %q", c.PartitionCount, c.ReplicationFactor, c.Name)
		}
		if _, err := ck.GetPartition("k"); !errors.Is(err, clusterkit.ErrNotStarted) {
			t.Fatalf("GetPartition before Start: got %v, want ErrNotStarted", err)
		}
		if err := ck.Stop(context.Background()); err != nil {
			t.Fatalf("Stop before Start: %v", err)
		}
		if err := ck.Start(context.Background()); !errors.Is(err, clusterkit.ErrStopped) {
			t.Fatalf("Start after Stop: got %v, want ErrStopped", err)
		}
	})
}

func TestConfigMismatchIsRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	clustertest.Start(t, externalOptions(t, srv, "node-1"), nil)
	o := externalOptions(t, srv, "node-2")
	o.PartitionCount = 32
	ck, err := clusterkit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = ck.Start(contextTimeout(t, 10*time.Second))
	if !errors.Is(err, clusterkit.ErrConfigMismatch) {
		t.Fatalf("Start with PartitionCount 32 on a 16-partition cluster: got %v, want ErrConfigMismatch", err)
	}
	// Nothing of node-2 is left in etcd.
	cli := srv.Client(t)
	resp, err := cli.Get(contextTimeout(t, 5*time.Second), "/clusterkit/default/members/node-2")
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("node-2's member record after a refused start: %v, %v", resp, err)
	}
}

func TestDuplicateNodeIDIsRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	clustertest.Start(t, externalOptions(t, srv, "node-1"), nil)
	o := externalOptions(t, srv, "node-1") // other DataDir: no proof of being the previous holder
	ck, err := clusterkit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = ck.Start(contextTimeout(t, 15*time.Second))
	if !errors.Is(err, clusterkit.ErrNodeIDInUse) {
		t.Fatalf("second live node-1: got %v, want ErrNodeIDInUse", err)
	}
}

func TestRestartBeforeLeaseExpiryTakesOverAtOnce(t *testing.T) {
	srv := etcdtest.Start(t)
	recs := newRecorders(2)
	o := externalOptions(t, srv, "node-2")
	o.LeaseTTL = 5 * time.Second
	first := clustertest.Start(t, externalOptions(t, srv, "node-1"), recs[0].attach)
	second := clustertest.Start(t, o, nil)
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(first, second) }, "never agreed")
	second.Halt() // a crash: the lease stays for 5 s
	began := time.Now()
	again := clustertest.Start(t, o, nil) // same DataDir: proves it held the old lease
	if took := time.Since(began); took > 4*time.Second {
		t.Fatalf("restart took %v: it waited for the old lease", took)
	}
	t.Logf("restart with proof registered after %v (lease TTL 5s)", time.Since(began))
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(first, again) }, "never agreed after restart")
	clustertest.Eventually(t, 5*time.Second, func() bool { return index(recs[0].snapshot(), "rejoin:node-2") >= 0 },
		"no rejoin reported for the restarted node-2: %v", recs[0].snapshot())
}

func TestJoinWithWrongTokenIsRefused(t *testing.T) {
	first := clustertest.Start(t, clustertest.Options(t, "node-1"), nil)
	o := clustertest.Options(t, "node-2")
	o.JoinAddr = clustertest.Addr(first)
	o.ClusterToken = "wrong"
	ck, err := clusterkit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = ck.Start(contextTimeout(t, 10*time.Second))
	if !errors.Is(err, clusterkit.ErrJoinFailed) || !errors.Is(err, clusterkit.ErrUnauthorized) {
		t.Fatalf("join with a wrong token: got %v, want ErrJoinFailed and ErrUnauthorized", err)
	}
	for _, auth := range []string{"", "Bearer nope", "test-token"} {
		req, _ := http.NewRequest(http.MethodPost, "https://"+clustertest.Addr(first)+"/cluster/join", bytes.NewReader([]byte(`{"node_id":"x"}`)))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := clustertest.HTTPSClient(t, first).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("join with Authorization %q: status %d, want 401", auth, resp.StatusCode)
		}
	}
	if n := len(first.GetCluster().Nodes); n != 1 {
		t.Fatalf("after refused joins the cluster has %d nodes, want 1", n)
	}
}

func TestCustomData(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := formExternal(t, srv, 2, nil)
	ctx := contextTimeout(t, 10*time.Second)
	if err := nodes[0].SetCustomData(ctx, "schema", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	got, err := nodes[1].GetCustomData(ctx, "schema")
	if err != nil || string(got) != "v2" {
		t.Fatalf("GetCustomData on the other node: %q, %v; want v2", got, err)
	}
	if err := nodes[1].SetCustomData(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	keys, err := nodes[0].ListCustomDataKeys(ctx)
	if err != nil || !slices.Equal(keys, []string{"b", "schema"}) {
		t.Fatalf("ListCustomDataKeys: %v, %v; want [b schema]", keys, err)
	}
	if err := nodes[0].DeleteCustomData(ctx, "schema"); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].GetCustomData(ctx, "schema"); !errors.Is(err, clusterkit.ErrNotFound) {
		t.Fatalf("after delete: got %v, want ErrNotFound", err)
	}
	big := make([]byte, clusterkit.MaxCustomDataSize+1)
	if err := nodes[0].SetCustomData(ctx, "big", big); !errors.Is(err, clusterkit.ErrValueTooLarge) {
		t.Fatalf("oversized value: got %v, want ErrValueTooLarge", err)
	}
	if err := nodes[0].SetCustomData(ctx, "", nil); !errors.Is(err, clusterkit.ErrInvalidKey) {
		t.Fatalf("empty key: got %v, want ErrInvalidKey", err)
	}
	if _, err := nodes[0].GetCustomData(ctx, "big"); !errors.Is(err, clusterkit.ErrNotFound) {
		t.Fatalf("a refused value was stored: %v", err)
	}
}

func TestManualRebalance(t *testing.T) {
	srv := etcdtest.Start(t)
	recs := newRecorders(2)
	nodes := formExternal(t, srv, 2, recs)
	if err := nodes[1].RebalancePartitions(contextTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("RebalancePartitions: %v", err)
	}
	for _, r := range recs {
		clustertest.Eventually(t, 5*time.Second, func() bool {
			for _, e := range r.snapshot() {
				if bytes.HasPrefix([]byte(e), []byte("start:")) && bytes.Contains([]byte(e), []byte(":manual:node-2")) {
					return true
				}
			}
			return false
		}, "no manual rebalance start: %v", r.snapshot())
	}
}

func TestRemoveNodeByAdmin(t *testing.T) {
	srv := etcdtest.Start(t)
	recs := newRecorders(3)
	nodes := formExternal(t, srv, 3, recs)
	if err := nodes[0].RemoveNode(contextTimeout(t, 5*time.Second), "node-3"); err != nil {
		t.Fatalf("RemoveNode: %v", err)
	}
	for _, r := range recs[:2] {
		clustertest.Eventually(t, 5*time.Second, func() bool {
			return index(r.snapshot(), "leave:node-3:"+string(clusterkit.LeaveRemovedByAdmin)) >= 0
		}, "no removed_by_admin leave: %v", r.snapshot())
	}
	clustertest.Eventually(t, 10*time.Second, func() bool { return clustertest.Agreed(nodes[:2]...) }, "survivors never agreed")
	// The removed node stays out.
	time.Sleep(1500 * time.Millisecond)
	if n := len(nodes[0].GetCluster().Nodes); n != 2 {
		t.Fatalf("after removal the cluster has %d nodes, want 2 (the removed node came back)", n)
	}
	if err := nodes[0].RemoveNode(contextTimeout(t, 5*time.Second), "nobody"); !errors.Is(err, clusterkit.ErrNotFound) {
		t.Fatalf("RemoveNode(nobody): got %v, want ErrNotFound", err)
	}
}
