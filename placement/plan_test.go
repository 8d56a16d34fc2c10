package placement

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func nodesN(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("n%02d", i+1)}
	}
	return nodes
}

func zoned(zones ...string) []Node {
	nodes := make([]Node, len(zones))
	for i, z := range zones {
		nodes[i] = Node{ID: fmt.Sprintf("n%02d", i+1), Zone: z}
	}
	return nodes
}

func mustPlan(t *testing.T, prev *Assignment, nodes []Node, p, rf int) *Assignment {
	t.Helper()
	a, err := Plan(prev, nodes, p, rf)
	if err != nil {
		t.Fatalf("Plan(%d nodes, P=%d, RF=%d): %v", len(nodes), p, rf, err)
	}
	if err := checkPlan(prev, nodes, p, rf, a); err != nil {
		t.Fatalf("Plan(%d nodes, P=%d, RF=%d) breaks a rule: %v", len(nodes), p, rf, err)
	}
	return a
}

func TestPlanInvalidInput(t *testing.T) {
	three := nodesN(3)
	tests := []struct {
		name       string
		prev       *Assignment
		nodes      []Node
		partitions int
		rf         int
		want       string // in the message
	}{
		{"zero partitions", nil, three, 0, 3, "partition count 0"},
		{"negative partitions", nil, three, -5, 3, "partition count -5"},
		{"too many partitions", nil, three, MaxPartitions + 1, 3, "partition count"},
		{"too many replica slots", nil, nodesN(100), MaxPartitions, 100, "replica slots"},
		{"zero replication factor", nil, three, 8, 0, "replication factor 0"},
		{"negative replication factor", nil, three, 8, -1, "replication factor -1"},
		{"no nodes", nil, nil, 8, 3, "no nodes"},
		{"empty node list", nil, []Node{}, 8, 3, "no nodes"},
		{"empty ID", nil, []Node{{ID: "a"}, {ID: ""}}, 8, 3, "node 1 has an empty ID"},
		{"duplicate ID", nil, []Node{{ID: "a"}, {ID: "b"}, {ID: "a"}}, 8, 3, `duplicate node ID "a"`},
		{"negative weight", nil, []Node{{ID: "a", Weight: -1}}, 8, 3, `node "a" has weight -1`},
		{"NaN weight", nil, []Node{{ID: "a", Weight: math.NaN()}}, 8, 3, `node "a" has weight NaN`},
		{"infinite weight", nil, []Node{{ID: "a", Weight: math.Inf(1)}}, 8, 3, `node "a" has weight +Inf`},
		{"prev with fewer partitions", &Assignment{Replicas: make([][]string, 4)}, three, 8, 3, "previous assignment has 4 partitions, want 8"},
		{"prev with more partitions", &Assignment{Replicas: make([][]string, 9)}, three, 8, 3, "previous assignment has 9 partitions, want 8"},
		{"empty prev", &Assignment{}, three, 8, 3, "previous assignment has 0 partitions, want 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Plan(tt.prev, tt.nodes, tt.partitions, tt.rf)
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("got error %v, want one wrapping ErrInvalidInput", err)
			}
			if got != nil {
				t.Errorf("got assignment %v with the error, want nil", got)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "placement: ") {
				t.Errorf("got message %q, want it to start with %q and contain %q", err, "placement: ", tt.want)
			}
		})
	}
}

func TestPlanRules(t *testing.T) {
	tests := []struct {
		name  string
		nodes []Node
		P, RF int
		check func(t *testing.T, a *Assignment)
	}{
		{"one node", nodesN(1), 8, 3, func(t *testing.T, a *Assignment) {
			for p, r := range a.Replicas {
				if !slices.Equal(r, []string{"n01"}) {
					t.Errorf("partition %d: got %v, want [n01]", p, r)
				}
			}
		}},
		{"RF above node count puts every node on every partition", nodesN(3), 16, 5, func(t *testing.T, a *Assignment) {
			for p, r := range a.Replicas {
				if got := slices.Sorted(slices.Values(r)); !slices.Equal(got, []string{"n01", "n02", "n03"}) {
					t.Errorf("partition %d: got %v, want all of n01 n02 n03", p, r)
				}
			}
		}},
		{"RF 1", nodesN(4), 10, 1, func(t *testing.T, a *Assignment) {
			if got := counts(a); maxOf(got)-minOf(got, nodesN(4)) > 1 {
				t.Errorf("got counts %v, want 2 or 3 each", got)
			}
		}},
		{"more nodes than slots", nodesN(10), 2, 2, func(t *testing.T, a *Assignment) {
			if got := len(counts(a)); got != 4 {
				t.Errorf("got %d nodes holding something, want 4", got)
			}
		}},
		{"10 nodes x 64 partitions: 6 or 7 primaries each", nodesN(10), 64, 3, func(t *testing.T, a *Assignment) {
			for n, c := range primaryCounts(a) {
				if c != 6 && c != 7 {
					t.Errorf("node %s: got %d primaries, want 6 or 7", n, c)
				}
			}
			for n, c := range counts(a) {
				if c != 19 && c != 20 {
					t.Errorf("node %s: got %d replicas, want 19 or 20", n, c)
				}
			}
		}},
		{"three zones RF 3: one replica per zone", zoned("a", "a", "b", "b", "c", "c", "c"), 30, 3, func(t *testing.T, a *Assignment) {
			zoneOf := map[string]string{"n01": "a", "n02": "a", "n03": "b", "n04": "b", "n05": "c", "n06": "c", "n07": "c"}
			for p, r := range a.Replicas {
				zs := []string{zoneOf[r[0]], zoneOf[r[1]], zoneOf[r[2]]}
				if slices.Sort(zs); !slices.Equal(zs, []string{"a", "b", "c"}) {
					t.Errorf("partition %d: got zones %v, want a b c", p, zs)
				}
			}
			// Each zone holds every partition once; zone c shares its 30
			// slots among 3 nodes, a and b among 2.
			want := map[string]int{"n01": 15, "n02": 15, "n03": 15, "n04": 15, "n05": 10, "n06": 10, "n07": 10}
			if got := counts(a); !reflect.DeepEqual(got, want) {
				t.Errorf("got counts %v, want %v", got, want)
			}
		}},
		{"two zones RF 3: two and one", zoned("a", "a", "a", "b", "b", "b"), 12, 3, func(t *testing.T, a *Assignment) {
			for p, r := range a.Replicas {
				inA := 0
				for _, n := range r {
					if n <= "n03" {
						inA++
					}
				}
				if inA != 1 && inA != 2 {
					t.Errorf("partition %d: got %d of %v in zone a, want 1 or 2", p, inA, r)
				}
			}
		}},
		{"a lone zone holds every partition", zoned("a", "b", "b", "b"), 8, 2, func(t *testing.T, a *Assignment) {
			if got := counts(a)["n01"]; got != 8 {
				t.Errorf("got n01 holding %d partitions, want all 8", got)
			}
		}},
		{"weight 2 holds twice as much", []Node{{ID: "big", Weight: 2}, {ID: "s1"}, {ID: "s2"}, {ID: "s3", Weight: 1}}, 50, 2, func(t *testing.T, a *Assignment) {
			c := counts(a)
			if c["big"] != 40 || c["s1"] != 20 || c["s2"] != 20 || c["s3"] != 20 {
				t.Errorf("got counts %v, want big 40 and 20 each for the others", c)
			}
		}},
		{"a heavy node is capped at every partition", []Node{{ID: "big", Weight: 100}, {ID: "s1"}, {ID: "s2"}}, 9, 2, func(t *testing.T, a *Assignment) {
			if c := counts(a); c["big"] != 9 || c["s1"] != 4 && c["s1"] != 5 {
				t.Errorf("got counts %v, want big 9 and 4 or 5 for the others", c)
			}
		}},
		{"tiny weights", []Node{{ID: "a", Weight: 1e-300}, {ID: "b", Weight: 5e-324}, {ID: "c", Weight: 1e-300}}, 8, 2, nil},
		{"huge weights", []Node{{ID: "a", Weight: math.MaxFloat64}, {ID: "b", Weight: math.MaxFloat64}, {ID: "c"}}, 8, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustPlan(t, nil, tt.nodes, tt.P, tt.RF)
			if tt.check != nil {
				tt.check(t, a)
			}
		})
	}
}

func TestPlanMovement(t *testing.T) {
	ten := nodesN(10)
	base := mustPlan(t, nil, ten, 64, 3)

	t.Run("join moves the newcomer's share", func(t *testing.T) {
		nodes := append(slices.Clone(ten), Node{ID: "n11"})
		next := mustPlan(t, base, nodes, 64, 3)
		gained, survivorLost := movement(base, next, nodes)
		if got := counts(next)["n11"]; gained != got {
			t.Errorf("got %d slots moved, want %d (what n11 got)", gained, got)
		}
		if got := counts(next)["n11"]; got != 17 && got != 18 {
			t.Errorf("got n11 holding %d, want 17 or 18 (192/11 = 17.45)", got)
		}
		if survivorLost != gained {
			t.Errorf("got %d slots lost by old nodes, want %d (each went to n11)", survivorLost, gained)
		}
		for _, c := range Diff(base, next) {
			if len(c.Gained) > 0 && !slices.Equal(c.Gained, []string{"n11"}) {
				t.Errorf("partition %d: got gained %v, want only n11", c.Partition, c.Gained)
			}
		}
	})

	t.Run("leave refills only the leaver's slots", func(t *testing.T) {
		nodes := slices.DeleteFunc(slices.Clone(ten), func(n Node) bool { return n.ID == "n04" })
		next := mustPlan(t, base, nodes, 64, 3)
		gained, survivorLost := movement(base, next, nodes)
		if held := counts(base)["n04"]; gained != held || survivorLost != 0 {
			t.Errorf("got %d slots moved and %d lost by survivors, want %d (what n04 held) and 0", gained, survivorLost, held)
		}
		for _, c := range Diff(base, next) {
			// Other changes are primaries handed on for balance.
			if len(c.Lost) > 0 && !slices.Equal(c.Lost, []string{"n04"}) || len(c.Lost) == 0 && len(c.Gained) > 0 {
				t.Errorf("partition %d: got lost %v and gained %v, want only n04 lost", c.Partition, c.Lost, c.Gained)
			}
		}
	})

	t.Run("a departed primary is replaced by a surviving replica", func(t *testing.T) {
		prev := &Assignment{Replicas: [][]string{
			{"gone", "n02", "n03"},
			{"gone", "n03", "n01"},
			{"n01", "n02", "n03"},
			{"n02", "n03", "n01"},
		}}
		next := mustPlan(t, prev, nodesN(4), 4, 3)
		for p := range 2 {
			if got := next.Primary(p); !slices.Contains(prev.Replicas[p][1:], got) {
				t.Errorf("partition %d: got primary %q, want one of the surviving replicas %v", p, got, prev.Replicas[p][1:])
			}
		}
	})

	t.Run("planning again changes nothing", func(t *testing.T) {
		if again := mustPlan(t, base, ten, 64, 3); !reflect.DeepEqual(again, base) {
			t.Errorf("got changes %v, want none", Diff(base, again))
		}
	})

	t.Run("weight change moves toward the new share", func(t *testing.T) {
		nodes := slices.Clone(ten)
		nodes[0].Weight = 2
		next := mustPlan(t, base, nodes, 64, 3)
		gained, _ := movement(base, next, nodes)
		// n01's share goes from 19.2 to 34.9: about 15 slots move to it.
		if got := counts(next)["n01"]; got < 34 || got > 35 || gained > got-counts(base)["n01"]+1 {
			t.Errorf("got n01 holding %d after %d slots moved, want 34 or 35 and only its gain moved", got, gained)
		}
	})

	t.Run("zone join takes slots only where its zone is missing", func(t *testing.T) {
		nodes := zoned("a", "a", "b", "b", "c", "c")
		prev := mustPlan(t, nil, nodes, 48, 3)
		nodes = append(nodes, Node{ID: "n07", Zone: "c"})
		next := mustPlan(t, prev, nodes, 48, 3)
		gained, _ := movement(prev, next, nodes)
		if got := counts(next)["n07"]; gained != got {
			t.Errorf("got %d slots moved, want %d (what n07 got)", gained, got)
		}
	})
}

func TestPlanPrevIsReadRobustly(t *testing.T) {
	nodes := nodesN(4)
	tests := []struct {
		name string
		prev [][]string
	}{
		{"duplicates in a partition", [][]string{{"n01", "n01", "n02"}, {"n02", "n03", "n03"}, {"n03", "n04", "n01"}, {"n04", "n01", "n02"}}},
		{"unknown and empty IDs", [][]string{{"", "n01", "x"}, {"y", "", ""}, {"n03", "n04", "n01"}, {"n04", "n01", "n02"}}},
		{"too many replicas", [][]string{{"n01", "n02", "n03", "n04"}, {"n02", "n03", "n04", "n01"}, {"n03", "n04", "n01", "n02"}, {"n04", "n01", "n02", "n03"}}},
		{"too few and empty", [][]string{{}, nil, {"n01"}, {"n02", "n03"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := &Assignment{Replicas: tt.prev}
			before := prev.Clone()
			next := mustPlan(t, prev, nodes, 4, 3)
			if !reflect.DeepEqual(prev, before) {
				t.Errorf("Plan modified prev: got %v, want %v", prev.Replicas, before.Replicas)
			}
			// Every valid previous pair that fits is kept: each partition
			// keeps its first three distinct known IDs.
			for p, r := range tt.prev {
				var want []string
				for _, id := range r {
					if strings.HasPrefix(id, "n") && !slices.Contains(want, id) && len(want) < 3 {
						want = append(want, id)
					}
				}
				for _, id := range want {
					if !next.Holds(p, id) {
						t.Errorf("partition %d: got %v, want it to keep %s", p, next.Replicas[p], id)
					}
				}
			}
		})
	}

	t.Run("all-empty prev is a first plan", func(t *testing.T) {
		fresh := mustPlan(t, nil, nodes, 16, 2)
		if got := mustPlan(t, &Assignment{Replicas: make([][]string, 16)}, nodes, 16, 2); !reflect.DeepEqual(got, fresh) {
			t.Errorf("got %v, want the plan of a nil prev %v", got.Replicas, fresh.Replicas)
		}
	})
}

func TestPlanDoesNotTouchInputs(t *testing.T) {
	nodes := []Node{{ID: "c", Zone: "z1"}, {ID: "a", Zone: "z2", Weight: 2}, {ID: "b"}}
	nodesBefore := slices.Clone(nodes)
	prev := mustPlan(t, nil, nodes[:2], 8, 2)
	prevBefore := prev.Clone()
	next := mustPlan(t, prev, nodes, 8, 2)
	if !slices.Equal(nodes, nodesBefore) {
		t.Errorf("got nodes %v after Plan, want %v", nodes, nodesBefore)
	}
	if !reflect.DeepEqual(prev, prevBefore) {
		t.Errorf("got prev %v after Plan, want %v", prev.Replicas, prevBefore.Replicas)
	}
	next.Replicas[0] = append(next.Replicas[0], "x") // the caller owns the result
	if reflect.DeepEqual(prev, next) || next.Replicas[1][len(next.Replicas[1])-1] == "x" {
		t.Errorf("appending to one partition of the result changed another")
	}
}

func TestDiff(t *testing.T) {
	a := &Assignment{Replicas: [][]string{{"n1", "n2"}, {"n2", "n3"}, {"n3", "n1"}}}
	tests := []struct {
		name       string
		prev, next *Assignment
		want       []Change
	}{
		{"nil to nil", nil, nil, nil},
		{"same", a, a.Clone(), nil},
		{"nil prev gains everything", nil, a, []Change{
			{0, []string{"n1", "n2"}, nil, "", "n1"},
			{1, []string{"n2", "n3"}, nil, "", "n2"},
			{2, []string{"n1", "n3"}, nil, "", "n3"},
		}},
		{"nil next loses everything", a, nil, []Change{
			{0, nil, []string{"n1", "n2"}, "n1", ""},
			{1, nil, []string{"n2", "n3"}, "n2", ""},
			{2, nil, []string{"n1", "n3"}, "n3", ""},
		}},
		{"primary swap only", a, &Assignment{Replicas: [][]string{{"n2", "n1"}, {"n2", "n3"}, {"n3", "n1"}}}, []Change{
			{0, nil, nil, "n1", "n2"},
		}},
		{"secondary reorder is no change", &Assignment{Replicas: [][]string{{"n1", "n2", "n3"}}}, &Assignment{Replicas: [][]string{{"n1", "n3", "n2"}}}, nil},
		{"replace a replica", a, &Assignment{Replicas: [][]string{{"n1", "n4"}, {"n2", "n3"}, {"n4", "n5", "n1"}}}, []Change{
			{0, []string{"n4"}, []string{"n2"}, "n1", "n1"},
			{2, []string{"n4", "n5"}, []string{"n3"}, "n3", "n4"},
		}},
		{"more partitions", &Assignment{Replicas: [][]string{{"n1"}}}, &Assignment{Replicas: [][]string{{"n1"}, {"n2"}}}, []Change{
			{1, []string{"n2"}, nil, "", "n2"},
		}},
		{"duplicates count once", &Assignment{Replicas: [][]string{{"n1", "n1"}}}, &Assignment{Replicas: [][]string{{"n2", "n2"}}}, []Change{
			{0, []string{"n2"}, []string{"n1"}, "n1", "n2"},
		}},
		{"large partitions", &Assignment{Replicas: [][]string{wide("n", 0, 40)}}, &Assignment{Replicas: [][]string{append(wide("n", 2, 40), "x", "x")}}, []Change{
			{0, []string{"x"}, []string{"n00", "n01"}, "n00", "n02"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Diff(tt.prev, tt.next); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAssignmentMethods(t *testing.T) {
	var none *Assignment
	if none.Partitions() != 0 || none.Primary(0) != "" || none.Holds(0, "n1") || none.Clone() != nil {
		t.Errorf("nil *Assignment: got Partitions %d, Primary %q, Holds %v, Clone %v; want 0, \"\", false, nil",
			none.Partitions(), none.Primary(0), none.Holds(0, "n1"), none.Clone())
	}
	a := &Assignment{Replicas: [][]string{{"n1", "n2"}, nil}}
	tests := []struct {
		name      string
		got, want any
	}{
		{"Partitions", a.Partitions(), 2},
		{"Primary(0)", a.Primary(0), "n1"},
		{"Primary(1) of an empty partition", a.Primary(1), ""},
		{"Primary(-1)", a.Primary(-1), ""},
		{"Primary(2)", a.Primary(2), ""},
		{"Holds(0, n2)", a.Holds(0, "n2"), true},
		{"Holds(0, n3)", a.Holds(0, "n3"), false},
		{"Holds(5, n1)", a.Holds(5, "n1"), false},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	c := a.Clone()
	c.Replicas[0][0] = "x"
	if a.Replicas[0][0] != "n1" || c.Replicas[1] != nil {
		t.Errorf("Clone: got original %v and clone %v, want a deep copy keeping nil partitions", a.Replicas, c.Replicas)
	}
}

// TestPlanSequence runs a longer scripted history at a moderate size, with
// zones and weights, checking every rule after each step.
func TestPlanSequence(t *testing.T) {
	const P, RF = 512, 3
	var nodes []Node
	for i := range 40 {
		nodes = append(nodes, Node{ID: fmt.Sprintf("n%03d", i), Zone: []string{"a", "b", "c"}[i%3]})
	}
	plan := mustPlan(t, nil, nodes, P, RF)
	steps := []struct {
		name   string
		change func([]Node) []Node
	}{
		{"join n100 in a", func(ns []Node) []Node { return append(ns, Node{ID: "n100", Zone: "a"}) }},
		{"join n101 in a new zone d", func(ns []Node) []Node { return append(ns, Node{ID: "n101", Zone: "d"}) }},
		{"leave n007", func(ns []Node) []Node { return slices.DeleteFunc(ns, func(n Node) bool { return n.ID == "n007" }) }},
		{"n010 weighs 3", func(ns []Node) []Node { ns[10].Weight = 3; return ns }},
		{"leave a whole zone d", func(ns []Node) []Node { return slices.DeleteFunc(ns, func(n Node) bool { return n.Zone == "d" }) }},
		{"leave five of zone b", func(ns []Node) []Node {
			k := 0
			return slices.DeleteFunc(ns, func(n Node) bool { k++; return n.Zone == "b" && k < 20 })
		}},
		{"join ten in c", func(ns []Node) []Node {
			for i := range 10 {
				ns = append(ns, Node{ID: fmt.Sprintf("n2%02d", i), Zone: "c", Weight: 0.5})
			}
			return ns
		}},
		{"n020 back to weight 1", func(ns []Node) []Node { ns[20].Weight = 1; return ns }},
	}
	for _, st := range steps {
		next := st.change(slices.Clone(nodes))
		got := mustPlan(t, plan, next, P, RF)
		gained, lostBySurvivors := movement(plan, got, next)
		lb := lowerBound(plan, got)
		t.Logf("%s: %d slots moved (%d by survivors), %d needed by the new counts", st.name, gained, lostBySurvivors, lb)
		if float64(gained) > 2*float64(lb)+2 {
			t.Errorf("%s: got %d slots moved, want at most about %d", st.name, gained, lb)
		}
		nodes, plan = next, got
	}
}

// wide returns IDs prefix00 … for k in [from, to).
func wide(prefix string, from, to int) []string {
	var ids []string
	for k := from; k < to; k++ {
		ids = append(ids, fmt.Sprintf("%s%02d", prefix, k))
	}
	return ids
}
