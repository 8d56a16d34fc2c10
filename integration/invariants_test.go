package integration

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// This file checks invariants over every record every node process made.

// primaryConflicts returns one line per (partition, epoch) that two
// observations (of any nodes) saw with different primaries: a partition
// has at most one primary per epoch.
func primaryConflicts(recs []record) []string {
	type key struct {
		p     int
		epoch uint64
	}
	seen := map[key]record{}
	var out []string
	for _, r := range recs {
		if r.Kind != "map" {
			continue
		}
		k := key{r.P, r.Epoch}
		first, ok := seen[k]
		if !ok {
			seen[k] = r
			continue
		}
		if first.Primary != r.Primary {
			out = append(out, fmt.Sprintf("partition %d epoch %d: %s saw primary %s, %s saw %s",
				r.P, r.Epoch, first.Self, first.Primary, r.Self, r.Primary))
		}
	}
	return out
}

// leavesOf returns the leave records about nodes not in allowed (as seen by
// any observer), formatted for a failure message.
func leavesOf(recs []record, allowed ...string) []string {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	var out []string
	for _, r := range recs {
		if r.Kind == "leave" && !ok[r.Node] {
			out = append(out, fmt.Sprintf("%s saw %s leave (%s)", r.Self, r.Node, r.Reason))
		}
	}
	return out
}

// noSource returns the partition changes that said no source of the data
// lives.
func noSource(recs []record) []string {
	var out []string
	for _, r := range recs {
		if r.Kind == "change" && r.NoSource {
			out = append(out, fmt.Sprintf("%s: partition %d to %s without a source", r.Self, r.P, r.Node))
		}
	}
	return out
}

// moves returns the partition changes that copy data to a node (neither a
// promotion of a replica nor a change without a source).
func moves(recs []record) []record {
	var out []record
	for _, r := range recs {
		if r.Kind == "change" && !r.Promoted && !r.NoSource {
			out = append(out, r)
		}
	}
	return out
}

// movesToOthers returns the partition changes that copy data to a node
// other than the ones named (the nodes that came back get their own slots
// back, with a catch-up or a copy).
func movesToOthers(recs []record, back ...string) []string {
	var out []string
	for _, r := range moves(recs) {
		if !slices.Contains(back, r.Node) {
			out = append(out, fmt.Sprintf("%s: partition %d copied to %s from %v (%s)", r.Self, r.P, r.Node, r.From, r.Reason))
		}
	}
	return out
}

// rejoinsOf returns the rejoin records about node.
func rejoinsOf(recs []record, node string) []record {
	var out []record
	for _, r := range recs {
		if r.Kind == "rejoin" && r.Node == node {
			out = append(out, r)
		}
	}
	return out
}

// first returns the time of the first record (made by an observer other
// than the ones excluded) that match reports, or the zero time.
func first(recs []record, match func(record) bool) time.Time {
	for _, r := range recs {
		if match(r) {
			return r.at()
		}
	}
	return time.Time{}
}

// countKind counts the records of one kind.
func countKind(recs []record, kind string) int {
	n := 0
	for _, r := range recs {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

// summary counts records by kind, for logs.
func summary(recs []record) string {
	n := map[string]int{}
	for _, r := range recs {
		n[r.Kind]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, n[k])
	}
	return b.String()
}

// limit shortens a list of failure lines for a message.
func limit(lines []string, n int) string {
	if len(lines) > n {
		return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n… and %d more", len(lines)-n)
	}
	return strings.Join(lines, "\n")
}
