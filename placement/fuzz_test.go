package placement

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func FuzzPartitionOf(f *testing.F) {
	for _, g := range golden {
		f.Add(g.key, 16384)
	}
	f.Add("", 0)
	f.Add("k", -1)
	f.Add("k", 1)
	f.Add("\xff\x00", math.MaxInt)
	f.Fuzz(func(t *testing.T, key string, partitions int) {
		got := PartitionOf(key, partitions)
		if partitions < 1 {
			if got != 0 {
				t.Fatalf("PartitionOf(%q, %d) = %d, want 0", key, partitions, got)
			}
			return
		}
		if got < 0 || got >= partitions {
			t.Fatalf("PartitionOf(%q, %d) = %d, want in [0, %d)", key, partitions, got, partitions)
		}
		if want := int(xxhash.Sum64String(key) % uint64(partitions)); got != want {
			t.Fatalf("PartitionOf(%q, %d) = %d, want %d", key, partitions, got, want)
		}
	})
}

// fuzzInput turns fuzzer bytes into a Plan call and a follow-up change.
type fuzzInput struct {
	data []byte
}

func (f *fuzzInput) byte() byte {
	if len(f.data) == 0 {
		return 0
	}
	b := f.data[0]
	f.data = f.data[1:]
	return b
}

var fuzzWeights = []float64{0, 1, 1, 1, 2, 0.5, 3, 10, 1e-9, 1e6, -1, math.NaN(), math.Inf(1), math.MaxFloat64, 5e-324, 0.25}

// node draws a node; with bad set it may draw an invalid one (empty ID,
// bad weight), which Plan must reject.
func (f *fuzzInput) node(k int, bad bool) Node {
	b := f.byte()
	n := Node{ID: fmt.Sprintf("n%d", k), Zone: []string{"", "a", "b", "c"}[b&3]}
	w := fuzzWeights[(b>>2)%uint8(len(fuzzWeights))]
	if !bad && (w < 0 || math.IsNaN(w) || math.IsInf(w, 0)) {
		w = 1
	}
	n.Weight = w
	if bad && b>>6 == 3 {
		n.ID = ""
	}
	return n
}

// validInput reports whether Plan must accept these arguments.
func validInput(prev *Assignment, nodes []Node, p, rf int) bool {
	if p < 1 || p > MaxPartitions || rf < 1 || len(nodes) == 0 || p*min(rf, len(nodes)) > MaxReplicaSlots {
		return false
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if n.ID == "" || seen[n.ID] || n.Weight < 0 || math.IsNaN(n.Weight) || math.IsInf(n.Weight, 0) {
			return false
		}
		seen[n.ID] = true
	}
	return prev == nil || len(prev.Replicas) == p
}

func FuzzPlan(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{63, 2, 9, 0, 4, 8, 1, 5, 9, 2, 6, 10, 0, 0, 0, 1, 2, 3})
	f.Add([]byte{7, 4, 3, 0x81, 0x42, 0x03, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0, 0, 0, 0xc0})
	f.Add([]byte{31, 1, 5, 1, 2, 1, 2, 1, 1, 0xff, 0xfe, 0x10, 0x20, 0x30, 7, 7, 7, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{data: data}
		flags := in.byte()
		bad := flags&0x80 != 0
		p := 1 + int(in.byte()%64)
		rf := 1 + int(in.byte()%5)
		if bad && flags&0x40 != 0 {
			p, rf = int(int8(in.byte())), int(int8(in.byte())) // may be ≤ 0
		}
		var nodes []Node
		for k := range int(in.byte() % 11) {
			nodes = append(nodes, in.node(k, bad))
		}
		if bad && flags&0x20 != 0 && len(nodes) > 1 {
			nodes[1].ID = nodes[0].ID
		}

		// An arbitrary previous assignment: known, departed, empty and
		// repeated IDs, any length.
		var prev *Assignment
		if flags&1 != 0 {
			n := p
			if bad && flags&0x10 != 0 {
				n = int(in.byte() % 8)
			}
			if n >= 0 && n <= 64 {
				prev = &Assignment{Replicas: make([][]string, n)}
				for q := range prev.Replicas {
					for range int(in.byte() % 6) {
						prev.Replicas[q] = append(prev.Replicas[q], []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "", "gone"}[in.byte()%10])
					}
				}
			}
		}

		next, err := Plan(prev, nodes, p, rf)
		if !validInput(prev, nodes, p, rf) {
			if !errors.Is(err, ErrInvalidInput) || next != nil {
				t.Fatalf("Plan of invalid input: got %v, %v; want nil, ErrInvalidInput", next, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Plan(%v, %v, %d, %d): %v", prev, nodes, p, rf, err)
		}
		if err := checkPlan(prev, nodes, p, rf, next); err != nil {
			t.Fatalf("Plan(%v, %v, %d, %d) = %v: %v", prev, nodes, p, rf, next.Replicas, err)
		}
		pl := newPlanner(prev, nodes, p, rf)
		if pl.planReplicas(); pl.fallbacks > 0 {
			t.Fatalf("Plan(%v, %v, %d, %d): planner used its fallback %d times", prev, nodes, p, rf, pl.fallbacks)
		}

		// One more step from the result: a join, a leave or a weight change.
		later := append([]Node(nil), nodes...)
		switch b := in.byte(); b % 3 {
		case 0:
			later = append(later, in.node(len(nodes)+1, false))
		case 1:
			if len(later) > 1 {
				k := int(in.byte()) % len(later)
				later = append(later[:k], later[k+1:]...)
			}
		case 2:
			later[int(in.byte())%len(later)].Weight = fuzzWeights[in.byte()%8]
		}
		again, err := Plan(next, later, p, rf)
		if err != nil {
			t.Fatalf("Plan(%v, %v, %d, %d): %v", next.Replicas, later, p, rf, err)
		}
		if err := checkPlan(next, later, p, rf, again); err != nil {
			t.Fatalf("Plan(%v, %v, %d, %d) = %v: %v", next.Replicas, later, p, rf, again.Replicas, err)
		}
	})
}
