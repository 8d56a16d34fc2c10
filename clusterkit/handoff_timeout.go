package clusterkit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultHandoffTimeout is how long a handoff may fail (its handlers
// retried with backoff) before it is reported stuck: long enough for a
// large copy that hits a few transient errors, short enough that an
// operator learns within minutes that one will not finish by itself.
const DefaultHandoffTimeout = 5 * time.Minute

// FailingHandoff is a handoff (partition Partition that Node receives)
// whose OnPartitionChange handlers failed at their last attempt; they are
// retried with backoff. Stuck: it has been failing longer than Node's
// Options.HandoffTimeout; CancelHandoff, on any node, gives it up.
type FailingHandoff struct {
	Partition int       `json:"partition"`
	Node      string    `json:"node"`
	Since     time.Time `json:"failing_since"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	Stuck     bool      `json:"stuck"`
}

// FailingHandoffs returns this node's failing handoffs, by partition (what
// clusterkit_handoffs_failing counts; ClusterFailingHandoffs adds the other
// nodes'). It is safe for concurrent use; nil before Start.
func (ck *ClusterKit) FailingHandoffs() []FailingHandoff {
	r := ck.active.Load()
	if r == nil {
		return nil
	}
	now := time.Now()
	failing := r.ready.failingSnapshot()
	var out []FailingHandoff
	for _, p := range slices.Sorted(maps.Keys(failing)) {
		f := failing[p]
		out = append(out, FailingHandoff{Partition: p, Node: ck.opts.NodeID, Since: f.since, Attempts: f.attempts,
			LastError: f.lastErr, Stuck: now.Sub(f.since) > ck.opts.HandoffTimeout})
	}
	return out
}

// CancelHandoff gives up the moves of partition p that are under way: the
// leader sets its Target back to its serving set, so the receiving nodes'
// handoffs are withdrawn and the partition keeps the nodes that serve it
// now (a later rebalance may plan the move again). It returns once the
// leader applied it. ErrInvalidArgument if p is not a partition index,
// ErrNotFound if no node is receiving it.
func (ck *ClusterKit) CancelHandoff(ctx context.Context, p int) error {
	r, err := ck.running()
	if err != nil {
		return err
	}
	if p < 0 || p >= ck.opts.PartitionCount {
		return fmt.Errorf("%w: partition %d: want 0 to %d", ErrInvalidArgument, p, ck.opts.PartitionCount-1)
	}
	var moving bool
	r.follower.read(func(v *view) { moving = v.assign != nil && len(v.assign.Partitions[p].Incoming) > 0 })
	if !moving {
		return fmt.Errorf("%w: no handoff of %s is under way", ErrNotFound, PartitionID(p))
	}
	return ck.control(ctx, cancelHandoffAction(p))
}

// cancelHandoffPrefix starts the control action that cancels partition
// p's handoffs: "cancel-handoff-<p>".
const cancelHandoffPrefix = "cancel-handoff-"

func cancelHandoffAction(p int) controlAction {
	return controlAction(cancelHandoffPrefix + strconv.Itoa(p))
}

// handoffCancels returns the partitions whose handoffs pending requests
// cancel.
func handoffCancels(control map[controlAction]controlRequest, partitions int) []int {
	var out []int
	for a := range control {
		if s, ok := strings.CutPrefix(string(a), cancelHandoffPrefix); ok {
			if p, err := strconv.Atoi(s); err == nil && p >= 0 && p < partitions {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// cancelHandoffs sets the Target of each cancelled partition that has a
// serving set back to that set (pure; called by reconcile).
func cancelHandoffs(targets [][]string, oldParts []partitionState, cancels []int) {
	for _, p := range cancels {
		if len(oldParts[p].Serving) > 0 {
			targets[p] = slices.Clone(oldParts[p].Serving)
		}
	}
}
