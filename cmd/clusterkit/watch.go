package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// watchEvent is one change watch reports: a line of text, or with -o json
// one JSON object per line.
type watchEvent struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"`
	// Node is the member concerned.
	Node string `json:"node,omitempty"`
	// From and To are the old and new value of what changed.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Version is the map version of a map event; Partition the new state
	// of a partition event.
	Version   int64      `json:"version,omitempty"`
	Partition *partition `json:"partition,omitempty"`
	// Message says the same for people.
	Message string `json:"message"`
}

// Events of watch.
const (
	evWatching     = "watching"
	evJoined       = "member_joined"
	evLeft         = "member_left"
	evState        = "member_state"
	evRestarted    = "member_restarted"
	evChanged      = "member_changed"
	evLeader       = "leader"
	evMap          = "map"
	evSettled      = "settled"
	evPartition    = "partition"
	evLostContact  = "lost_contact"
	evBackInTouch  = "back_in_contact"
	minWatchPeriod = 50 * time.Millisecond
)

func newWatchCommand(g *globals) *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print membership, leader and partition map changes as they happen, until interrupted",
		Long: `Poll the node's view of the cluster (GET /cluster with If-None-Match,
so an unchanged cluster costs a 304) and print one line per change:
members joining, leaving, changing state or restarting, the leader, and
each new map version with every partition whose nodes changed. With
-o json, one JSON object per line. Runs until interrupted; a node that
stops answering is reported once and polled again.

With --etcd it follows etcd's watch as a clusterkit.Router does and
prints the same lines as each change arrives (no polling, no --interval);
while etcd is unreachable it prints nothing and catches up after.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.etcd.endpoints != "" {
				r, err := openRouter(cmd.Context(), g)
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil // interrupted before the first read
					}
					return err
				}
				defer r.Close()
				w := &watcher{out: cmd.OutOrStdout(), json: g.output == "json"}
				return failed(w.follow(cmd.Context(), r, etcdSource(g)))
			}
			if interval < minWatchPeriod {
				return usageError("invalid --interval %v: at least %v", interval, minWatchPeriod)
			}
			c, err := newClient(g)
			if err != nil {
				return err
			}
			w := &watcher{c: c, out: cmd.OutOrStdout(), json: g.output == "json", interval: interval}
			return failed(w.run(cmd.Context()))
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 500*time.Millisecond, "how often to ask the node")
	return cmd
}

// watcher polls one node (or follows a router) and prints the
// differences between its views.
type watcher struct {
	c        *client
	out      io.Writer
	json     bool
	interval time.Duration
}

// run polls until ctx ends (then it returns nil) or the first view cannot
// be read (then it returns why).
func (w *watcher) run(ctx context.Context) error {
	prev, etag, err := w.c.cluster(ctx, "")
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	w.emit(watchEvent{Event: evWatching, Node: prev.Node, Version: prev.AssignmentVersion, Message: fmt.Sprintf(
		"watching cluster %s through %s: %d members, leader %s, map v%d", prev.Name, prev.Node, len(prev.Members), orDash(prev.Leader), prev.AssignmentVersion)})
	lost := false
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, tag, err := w.c.cluster(ctx, etag)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if !lost {
				lost = true
				w.emit(watchEvent{Event: evLostContact, Message: fmt.Sprintf("lost contact: %v; retrying every %v", err, w.interval)})
			}
			continue
		case lost:
			lost = false
			w.emit(watchEvent{Event: evBackInTouch, Message: "back in contact with " + w.c.base})
		}
		etag = tag
		if cur == nil {
			continue // 304: nothing changed
		}
		for _, e := range diff(prev, cur) {
			w.emit(e)
		}
		prev = cur
	}
}

func (w *watcher) emit(e watchEvent) {
	e.Time = time.Now().UTC()
	if w.json {
		b, _ := json.Marshal(e)
		fmt.Fprintf(w.out, "%s\n", b)
		return
	}
	indent := ""
	if e.Event == evPartition {
		indent = "  " // under its map line
	}
	fmt.Fprintf(w.out, "%s  %s%s\n", e.Time.Local().Format("15:04:05.000"), indent, e.Message)
}

// diff lists the changes from a to b: members, leader, then the map.
func diff(a, b *clusterView) []watchEvent {
	var out []watchEvent
	old := map[string]member{}
	for _, m := range a.Members {
		old[m.ID] = m
	}
	seen := map[string]bool{}
	for _, m := range b.Members {
		seen[m.ID] = true
		o, ok := old[m.ID]
		switch {
		case !ok:
			out = append(out, watchEvent{Event: evJoined, Node: m.ID, To: m.State,
				Message: fmt.Sprintf("joined %s (%s)", m.ID, placementOf(m))})
			continue
		case o.Incarnation != m.Incarnation && m.Incarnation != 0 && o.Incarnation != 0:
			out = append(out, watchEvent{Event: evRestarted, Node: m.ID, From: fmt.Sprintf("%x", uint64(o.Incarnation)), To: fmt.Sprintf("%x", uint64(m.Incarnation)),
				Message: fmt.Sprintf("restarted %s: new incarnation %x", m.ID, uint64(m.Incarnation))})
		}
		if o.State != m.State {
			out = append(out, watchEvent{Event: evState, Node: m.ID, From: o.State, To: m.State,
				Message: fmt.Sprintf("state %s: %s → %s", m.ID, o.State, m.State)})
		}
		if from, to := placementOf(o), placementOf(m); from != to && m.State != "offline" && o.State != "offline" {
			out = append(out, watchEvent{Event: evChanged, Node: m.ID, From: from, To: to,
				Message: fmt.Sprintf("changed %s: %s → %s", m.ID, from, to)})
		}
	}
	for _, m := range a.Members {
		if !seen[m.ID] {
			out = append(out, watchEvent{Event: evLeft, Node: m.ID, From: m.State, Message: "left " + m.ID})
		}
	}
	if a.Leader != b.Leader {
		out = append(out, watchEvent{Event: evLeader, From: a.Leader, To: b.Leader,
			Message: fmt.Sprintf("leader %s → %s", orDash(a.Leader), orDash(b.Leader))})
	}
	if a.AssignmentVersion == b.AssignmentVersion {
		if a.Settled != b.Settled {
			out = append(out, watchEvent{Event: evSettled, Version: b.AssignmentVersion, Message: fmt.Sprintf("map v%d %s", b.AssignmentVersion, settledText(b))})
		}
		return out
	}
	var parts []watchEvent
	for i, p := range b.Partitions {
		if i < len(a.Partitions) && samePartition(&a.Partitions[i], &p) {
			continue
		}
		parts = append(parts, watchEvent{Event: evPartition, Partition: &b.Partitions[i],
			Message: fmt.Sprintf("%s epoch %d: primary %s, replicas %s, incoming %s", p.ID, p.Epoch, orDash(p.Primary), joined(p.Replicas), joined(p.Incoming))})
	}
	out = append(out, watchEvent{Event: evMap, Version: b.AssignmentVersion,
		Message: fmt.Sprintf("map v%d → v%d: %d partitions changed; %s", a.AssignmentVersion, b.AssignmentVersion, len(parts), settledText(b))})
	return append(out, parts...)
}

func settledText(v *clusterView) string {
	if v.Settled {
		return "settled"
	}
	n := 0
	for _, p := range v.Partitions {
		n += len(p.Incoming)
	}
	if n == 0 {
		return "not settled (membership changed; the leader plans anew)"
	}
	return fmt.Sprintf("rebalancing: %d incoming", n)
}

// placementOf is a member's address and what its placement depends on,
// as text.
func placementOf(m member) string {
	s := "address " + orDash(m.Address)
	if m.Zone != "" {
		s += ", zone " + m.Zone
	}
	return s + fmt.Sprintf(", weight %g", m.Weight)
}

func samePartition(a, b *partition) bool {
	return a.Primary == b.Primary && a.Epoch == b.Epoch &&
		strings.Join(a.Replicas, ",") == strings.Join(b.Replicas, ",") &&
		strings.Join(a.Incoming, ",") == strings.Join(b.Incoming, ",")
}
