package clusterkit

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/leases"
)

// TestEndpointsFollowWhileDialing: the endpoint list changes (set, and
// follow from etcd's member list) while the lease keep-alive and another
// goroutine dial through endpointGuard — the race of the fault tests'
// exit code 66 (see leases' faultrepro test), which -race reports when
// Dial is not serialized with SetEndpoints. follow still makes the client
// learn the members' client URLs.
func TestEndpointsFollowWhileDialing(t *testing.T) {
	srv := etcdtest.Start(t)
	url := srv.Endpoints()[0]
	const dead = "http://127.0.0.1:1"
	cli := etcdtest.NewClient(t, url, dead)
	e := &endpointGuard{cli: cli}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := leases.Register(ctx, cli, "/clusterkit/test/members/n1", []byte("v"), time.Second,
		leases.WithDialer(e.dial), leases.WithRequestTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close(context.Background())
	var wg sync.WaitGroup
	end := time.Now().Add(2 * time.Second)
	wg.Go(func() {
		for time.Now().Before(end) {
			resp, err := cli.MemberList(ctx)
			if err != nil {
				t.Errorf("MemberList: %v", err)
				return
			}
			e.set(url, dead)
			if !e.follow(resp.Members, "") {
				t.Errorf("follow did not replace %v by the members' URLs", []string{url, dead})
				return
			}
		}
	})
	wg.Go(func() {
		for time.Now().Before(end) {
			c, err := e.dial(url)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			c.Close()
		}
	})
	wg.Wait()
	select {
	case <-reg.Done():
		t.Fatalf("the registration ended while endpoints changed: %v", reg.Err())
	default:
	}
	if got := cli.Endpoints(); !slices.Equal(got, []string{url}) {
		t.Fatalf("endpoints after follow: %v, want the member's %v", got, url)
	}
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e.follow(resp.Members, "") {
		t.Fatal("follow changed endpoints that already match the members")
	}
}

// TestFollowKeepsAVoterOnItsOwnMember: a node whose own member is a
// started voter talks only to it, and to the other voters once it stopped (a request put on a frozen peer would
// hang until gRPC's keep-alive gives up: the leader's failover write in
// TestTwoFrozenNodesEnterMaintenance did); a plain node or a learner's
// node follows every started voter.
func TestFollowKeepsAVoterOnItsOwnMember(t *testing.T) {
	srv := etcdtest.Start(t)
	e := &endpointGuard{cli: etcdtest.NewClient(t, srv.Endpoints()...)}
	const a, b, c = "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"
	members := []*etcdserverpb.Member{
		{ID: 1, Name: "a", ClientURLs: []string{a}},
		{ID: 2, Name: "b", ClientURLs: []string{b}},
		{ID: 3, Name: "c", ClientURLs: []string{c}, IsLearner: true},
		{ID: 4, Name: "", ClientURLs: nil}, // added, not started
	}
	for _, tc := range []struct {
		own  string
		want []string
	}{
		{b, []string{b}},
		{"", []string{a, b}},
		{c, []string{a, b}}, // its member is a learner
		{a, []string{a}},
	} {
		e.follow(members, tc.own)
		if got := e.cli.Endpoints(); !slices.Equal(got, tc.want) {
			t.Errorf("follow with own %q: endpoints %v, want %v", tc.own, got, tc.want)
		}
	}
	// a's member stopped (removed while frozen): its client leaves it for
	// the voters it knew of, once.
	if !e.leave(a, []string{b}) || !slices.Equal(e.cli.Endpoints(), []string{b}) {
		t.Errorf("leave(a): endpoints %v, want [%s]", e.cli.Endpoints(), b)
	}
	if e.leave(a, []string{b}) {
		t.Error("leave(a) again changed the endpoints")
	}
}
