package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
)

// summary turns events into one line per kind: how many, and about what.
// Every node reports every cluster event; a partition gain only the node
// that gains it.
func summary(events []store.Event) []string {
	byKind := map[string][]store.Event{}
	for _, e := range events {
		byKind[e.Kind] = append(byKind[e.Kind], e)
	}
	var lines []string
	add := func(kind, label string, detail func([]store.Event) string) {
		if es := byKind[kind]; len(es) > 0 {
			lines = append(lines, fmt.Sprintf("%-19s %4d  %s", label, len(es), detail(es)))
		}
	}
	about := func(es []store.Event) string {
		return fmt.Sprintf("%s (reported by %d nodes)", distinct(es, func(e store.Event) string {
			if e.Reason != "" {
				return e.Subject + " " + e.Reason
			}
			return e.Subject
		}), len(distinctSet(es, func(e store.Event) string { return e.Node })))
	}
	add(store.EventJoin, "node joined", about)
	add(store.EventRejoin, "node rejoined", about)
	add(store.EventLeave, "node left", about)
	add(store.EventRebalanceStart, "rebalance started", func(es []store.Event) string {
		return distinct(es, func(e store.Event) string {
			return fmt.Sprintf("#%d (%s by %s, %d moves)", e.Rebalance, e.Reason, e.Subject, e.Moves)
		})
	})
	add(store.EventRebalanceComplete, "rebalance completed", func(es []store.Event) string {
		return distinct(es, func(e store.Event) string { return fmt.Sprintf("#%d", e.Rebalance) })
	})
	add(store.EventPartitionGain, "partition gained", func(es []store.Event) string {
		promoted, noSource := 0, 0
		for _, e := range es {
			switch {
			case e.Promoted:
				promoted++
			case e.NoSource:
				noSource++
			}
		}
		return fmt.Sprintf("%d copied from a serving node, %d promoted replica→primary, %d without a source", len(es)-promoted-noSource, promoted, noSource)
	})
	add(store.EventHealth, "health changed", func(es []store.Event) string {
		return distinct(es, func(e store.Event) string { return e.Reason })
	})
	return lines
}

// distinct lists the distinct keys of es in first-seen order.
func distinct(es []store.Event, key func(store.Event) string) string {
	return strings.Join(distinctSet(es, key), ", ")
}

func distinctSet(es []store.Event, key func(store.Event) string) []string {
	var out []string
	for _, e := range es {
		if k := key(e); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// stats reads node n's GET /stats.
func stats(ctx context.Context, n *localcluster.Node) (store.Stats, error) {
	var st store.Stats
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.API+"/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("%s: %w", n.ID, err)
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
