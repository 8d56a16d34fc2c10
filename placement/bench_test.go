package placement

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func BenchmarkPartitionOf(b *testing.B) {
	for _, size := range []int{16, 100} {
		key := strings.Repeat("k", size)
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			sum := 0
			for b.Loop() {
				sum += PartitionOf(key, 16384)
			}
			_ = sum
		})
	}
}

func benchNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("node-%04d", i)}
	}
	return nodes
}

// BenchmarkPlan measures Plan on equal-weight nodes, no zones, RF 3: a
// fresh plan, a join of one node and a leave of one node, each from a
// balanced plan. It reports moves/opt (replica slots gained divided by the
// optimum: the newcomer's ideal share P·R/(N+1) for a join, the slots the
// leaver held for a leave), primarymoves/opt (partitions whose primary
// changed divided by P/(N+1) for a join, the leaver's primaries for a
// leave), and the most and fewest replica slots (load) and primaries per
// node in the result.
func BenchmarkPlan(b *testing.B) {
	for _, size := range []struct{ n, p int }{{10, 64}, {100, 1024}, {1000, 16384}} {
		const rf = 3
		nodes := benchNodes(size.n)
		base, err := Plan(nil, nodes, size.p, rf)
		if err != nil {
			b.Fatal(err)
		}
		joined := append(slices.Clone(nodes), Node{ID: "node-new"})
		leaver := nodes[size.n/2].ID
		left := slices.DeleteFunc(slices.Clone(nodes), func(n Node) bool { return n.ID == leaver })
		held, led := counts(base)[leaver], primaryCounts(base)[leaver]
		cases := []struct {
			name     string
			prev     *Assignment
			nodes    []Node
			opt, pop float64 // optimum slots and primaries moved
		}{
			{"fresh", nil, nodes, 0, 0},
			{"join", base, joined, float64(size.p*rf) / float64(size.n+1), float64(size.p) / float64(size.n+1)},
			{"leave", base, left, float64(held), float64(led)},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", size.n, size.p, rf, c.name), func(b *testing.B) {
				var got *Assignment
				for b.Loop() {
					got, err = Plan(c.prev, c.nodes, size.p, rf)
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if c.prev != nil {
					gained, _ := movement(c.prev, got, c.nodes)
					b.ReportMetric(float64(gained)/c.opt, "moves/opt")
					moved := 0
					for p := range got.Replicas {
						if got.Primary(p) != c.prev.Primary(p) {
							moved++
						}
					}
					b.ReportMetric(float64(moved)/c.pop, "primarymoves/opt")
				}
				load, prim := counts(got), primaryCounts(got)
				b.ReportMetric(float64(maxOf(load)), "maxload")
				b.ReportMetric(float64(minOf(load, c.nodes)), "minload")
				b.ReportMetric(float64(maxOf(prim)), "maxprim")
				b.ReportMetric(float64(minOf(prim, c.nodes)), "minprim")
			})
		}
	}
}

func primaryCounts(a *Assignment) map[string]int {
	c := map[string]int{}
	for p := range a.Replicas {
		c[a.Primary(p)]++
	}
	return c
}

func maxOf(m map[string]int) int {
	v := 0
	for _, c := range m {
		v = max(v, c)
	}
	return v
}

func minOf(m map[string]int, nodes []Node) int {
	v := -1
	for _, n := range nodes {
		if c := m[n.ID]; v < 0 || c < v {
			v = c
		}
	}
	return v
}
