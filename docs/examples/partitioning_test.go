package examples_test

import (
	"fmt"

	"github.com/clusterkit-go/clusterkit/placement"
)

// Plan 64 partitions × RF 3 on four nodes, add a fifth, and count what
// moved: the planner keeps every (partition, node) pair balance allows.
func Example_placement() {
	fmt.Println("user:42 → partition", placement.PartitionOf("user:42", 64))

	nodes := []placement.Node{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}
	before, err := placement.Plan(nil, nodes, 64, 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	after, _ := placement.Plan(before, append(nodes, placement.Node{ID: "e"}), 64, 3)

	slots, primaries := map[string]int{}, map[string]int{}
	for _, r := range after.Replicas {
		primaries[r[0]]++
		for _, id := range r {
			slots[id]++
		}
	}
	fmt.Println("slots:", slots)
	fmt.Println("primaries:", primaries)

	moved, primaryMoves := 0, 0
	for _, c := range placement.Diff(before, after) {
		moved += len(c.Gained)
		if c.PrimaryBefore != c.PrimaryAfter {
			primaryMoves++
		}
	}
	fmt.Printf("join moved %d replica slots (optimum 64·3/5 ≈ 38.4) and %d primaries (64/5 ≈ 12.8)\n", moved, primaryMoves)
	// Output:
	// user:42 → partition 2
	// slots: map[a:39 b:39 c:38 d:38 e:38]
	// primaries: map[a:13 b:13 c:13 d:13 e:12]
	// join moved 38 replica slots (optimum 64·3/5 ≈ 38.4) and 14 primaries (64/5 ≈ 12.8)
}
