package election_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/clusterkit-go/clusterkit/election"
	"github.com/clusterkit-go/clusterkit/leases"
)

// Campaign, write fenced while leading, hand over on shutdown. (Not run:
// it needs an etcd at 127.0.0.1:2379.)
func ExampleCampaign() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	// The session's TTL is the failover time after a crash. The caller
	// owns the session and closes it last.
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	lead, err := election.Campaign(ctx, s, "/clusterkit/default/leader/", "node-1")
	if err != nil {
		log.Fatal(err) // ErrElectionLost: make a new session and campaign again
	}
	defer lead.Resign(context.Background()) // hands over at once

	// Every leader write is fenced: it fails once another node leads.
	_, err = lead.Txn(lead.Context(), nil, clientv3.OpPut("/clusterkit/default/assignment", "..."))
	if errors.Is(err, election.ErrNotLeader) {
		return
	}
	// Or put lead.Cmp() in the If of your own Txn.
	<-lead.Done()
	fmt.Println(context.Cause(lead.Context()))
}

// Campaign on a node's membership lease: one lease, kept alive by the
// Registration alone; leadership ends with membership. (Not run: it needs
// an etcd at 127.0.0.1:2379.)
func ExampleCampaignOnLease() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	reg, err := leases.Register(ctx, cli, "/clusterkit/default/members/node-1", []byte("{}"), 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close(context.Background()) // revokes the lease: membership and candidacy end

	lead, err := election.CampaignOnLease(ctx, cli, reg.LeaseID(), "/clusterkit/default/leader/", "node-1",
		election.WithLeaseDone(reg.Done()))
	if err != nil {
		log.Fatal(err) // ErrElectionLost: the registration ended; register again
	}
	defer lead.Resign(context.Background())
	<-lead.Done()
	fmt.Println(context.Cause(lead.Context()))
}

// Observe the leader, including "no leader". (Not run: it needs an etcd.)
func ExampleObserve() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leaders, err := election.Observe(ctx, cli, "/clusterkit/default/leader/")
	if err != nil {
		log.Fatal(err)
	}
	for l := range leaders { // closed after ctx ends
		if l.Key == "" {
			fmt.Println("no leader")
			continue
		}
		fmt.Printf("leader %s (token %d)\n", l.Value, l.Token)
	}
}
