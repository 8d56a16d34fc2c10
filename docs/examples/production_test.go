package examples_test

import (
	"os"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Three embedded nodes on three hosts: node-1 bootstraps, the others join
// through it. Every node gets the same options but its own NodeID,
// HTTPAddr and JoinAddr; etcd's ports follow from HTTPAddr (client
// 18080, peer 28080). The cluster-wide settings are fixed at creation.
func Example_embedded() {
	opts := clusterkit.Options{
		NodeID:            "node-2",
		HTTPAddr:          "10.0.0.6:8080",
		JoinAddr:          "10.0.0.5:8080", // node-1; empty on node-1
		DataDir:           "/var/lib/myapp/clusterkit",
		ClusterToken:      os.Getenv("CLUSTER_TOKEN"),
		Zone:              "rack-2",
		PartitionCount:    1024, // fixed forever: 10–100 per node you may ever run
		ReplicationFactor: 3,
		LeaseTTL:          5 * time.Second,
		DurableStorage:    true, // the application's data is on disk
	}
	_, _ = clusterkit.New(opts)
}

// Plain clients of an etcd cluster you run: nothing of etcd's on the node.
func Example_external() {
	opts := clusterkit.Options{
		NodeID:       "node-2",
		HTTPAddr:     "10.0.0.6:8080",
		ClusterName:  "orders", // several clusters may share one etcd
		ClusterToken: os.Getenv("CLUSTER_TOKEN"),
		Etcd: clusterkit.EtcdConfig{
			Endpoints: []string{"http://10.0.1.1:2379", "http://10.0.1.2:2379", "http://10.0.1.3:2379"},
			Username:  "clusterkit",
			Password:  os.Getenv("ETCD_PASSWORD"),
		},
	}
	_, _ = clusterkit.New(opts)
}
