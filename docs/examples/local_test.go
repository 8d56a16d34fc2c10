package examples_test

import (
	"context"
	"os"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// localOptions returns the options of a node for a quick local run: HTTP
// on a free loopback port (the embedded etcd's ports are picked free too),
// a fresh data directory, fast etcd ticks and a 2 s lease. The caller
// removes the directory when done.
func localOptions(nodeID string) clusterkit.Options {
	dir, err := os.MkdirTemp("", "clusterkit-guide-"+nodeID+"-")
	if err != nil {
		panic(err)
	}
	return clusterkit.Options{
		NodeID:            nodeID,
		HTTPAddr:          "127.0.0.1:0",
		DataDir:           dir,
		PartitionCount:    16,
		ReplicationFactor: 2,
		LeaseTTL:          2 * time.Second,
		ClusterToken:      "guide-token",
		Embedded: clusterkit.EmbeddedConfig{
			MaxVoters:       1,
			TickInterval:    10 * time.Millisecond,
			ElectionTimeout: 100 * time.Millisecond,
		},
	}
}

// start creates a node from opts, lets configure register its hooks, and
// starts it.
func start(opts clusterkit.Options, configure func(ck *clusterkit.ClusterKit)) (*clusterkit.ClusterKit, error) {
	ck, err := clusterkit.New(opts)
	if err != nil {
		return nil, err
	}
	if configure != nil {
		configure(ck)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ck.Start(ctx); err != nil {
		return nil, err
	}
	return ck, nil
}

// waitSettled polls until every node's map is settled (planned for exactly
// the current members, nothing incoming) and they all hold the same version.
func waitSettled(nodes ...*clusterkit.ClusterKit) bool {
	return eventually(func() bool {
		c := nodes[0].GetCluster()
		ok := c.Settled && len(c.Nodes) == len(nodes)
		for _, n := range nodes[1:] {
			o := n.GetCluster()
			ok = ok && o.Settled && o.AssignmentVersion == c.AssignmentVersion
		}
		return ok
	})
}

// eventually polls cond every 10 ms for up to 20 s and reports whether it held.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}
