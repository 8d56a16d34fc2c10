package leases_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/clusterkit-go/clusterkit/leases"
)

// A node registers its member key, crashes, and its restart takes the key
// over at once by presenting the lease id it persisted; a graceful Close
// then deletes the key.
func ExampleRegister() {
	// An embedded etcd for the example; a real node uses its own client.
	dir, _ := os.MkdirTemp("", "leases-example")
	defer os.RemoveAll(dir)
	e, endpoint, err := startEtcd(dir, 100)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()
	cli, err := newClient(endpoint)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const key = "/clusterkit/default/members/node-1"

	reg, err := leases.Register(ctx, cli, key, []byte(`{"id":"node-1","incarnation":1}`), 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	token := reg.LeaseID() // persisted by the node
	reg.Abandon()          // the process dies; the key would stay for up to 5 s

	reg, err = leases.Register(ctx, cli, key, []byte(`{"id":"node-1","incarnation":2}`), 5*time.Second,
		leases.WithPreviousLease(token))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, _ := cli.Get(ctx, key)
	fmt.Printf("%s, bound to the new lease: %v\n", resp.Kvs[0].Value, resp.Kvs[0].Lease == int64(reg.LeaseID()))

	if err := reg.Close(ctx); err != nil { // graceful leave
		fmt.Println(err)
	}
	resp, _ = cli.Get(ctx, key)
	fmt.Println("keys after Close:", resp.Count, "Err:", reg.Err())
	// Output:
	// {"id":"node-1","incarnation":2}, bound to the new lease: true
	// keys after Close: 0 Err: <nil>
}
