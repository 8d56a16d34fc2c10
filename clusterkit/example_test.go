package clusterkit_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// A one-node cluster on embedded etcd: where does a key go, and who serves it?
func Example() {
	dir, _ := os.MkdirTemp("", "clusterkit-example-")
	defer os.RemoveAll(dir)
	ck, err := clusterkit.New(clusterkit.Options{
		NodeID:   "node-1",
		HTTPAddr: "127.0.0.1:0",
		DataDir:  dir,
		Embedded: clusterkit.EmbeddedConfig{TickInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ck.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer ck.Stop(context.Background())

	p, _ := ck.GetPartition("user:42")
	fmt.Println(p.ID, "primary:", ck.GetPrimary(p).ID, "I am primary:", ck.IsPrimary(p))
	fmt.Println("replicas:", len(ck.GetReplicas(p)), "health:", ck.HealthCheck().Status)
	// Output:
	// partition-2 primary: node-1 I am primary: true
	// replicas: 0 health: degraded
}
