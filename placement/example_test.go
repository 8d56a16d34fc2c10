package placement_test

import (
	"fmt"

	"github.com/clusterkit-go/clusterkit/placement"
)

func Example() {
	const partitions, rf = 8, 2
	nodes := []placement.Node{
		{ID: "node-a", Zone: "eu-1a"},
		{ID: "node-b", Zone: "eu-1b"},
		{ID: "node-c", Zone: "eu-1c"},
	}

	// The leader plans the first assignment.
	plan, err := placement.Plan(nil, nodes, partitions, rf)
	if err != nil {
		panic(err)
	}

	// Every node maps a key to its partition and the partition to nodes.
	p := placement.PartitionOf("user:42", partitions)
	fmt.Printf("user:42 → partition %d → primary %s, replicas %v\n", p, plan.Primary(p), plan.Replicas[p])

	// node-d joins; the leader plans again from the previous assignment,
	// and each node learns what it gains and loses.
	nodes = append(nodes, placement.Node{ID: "node-d", Zone: "eu-1a"})
	next, err := placement.Plan(plan, nodes, partitions, rf)
	if err != nil {
		panic(err)
	}
	moved := 0
	for _, c := range placement.Diff(plan, next) {
		moved += len(c.Gained)
		fmt.Printf("partition %d: gains %v, loses %v, primary %s → %s\n", c.Partition, c.Gained, c.Lost, c.PrimaryBefore, c.PrimaryAfter)
	}
	fmt.Printf("%d of %d replica slots moved\n", moved, partitions*rf)
	// Output:
	// user:42 → partition 2 → primary node-b, replicas [node-b node-a]
	// partition 0: gains [], loses [], primary node-a → node-c
	// partition 1: gains [node-d], loses [node-a], primary node-b → node-b
	// partition 3: gains [node-d], loses [node-a], primary node-c → node-d
	// partition 4: gains [node-d], loses [node-b], primary node-c → node-c
	// partition 6: gains [node-d], loses [node-c], primary node-b → node-d
	// 4 of 16 replica slots moved
}
