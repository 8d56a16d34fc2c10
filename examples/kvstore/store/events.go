package store

import (
	"context"
	"fmt"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Event kinds.
const (
	EventReady             = "ready"
	EventJoin              = "join"
	EventRejoin            = "rejoin"
	EventLeave             = "leave"
	EventRebalanceStart    = "rebalance_start"
	EventRebalanceComplete = "rebalance_complete"
	EventPartitionGain     = "partition_gain" // this node gains a partition
	EventHealth            = "health"
	EventStopping          = "stopping"
)

// Event is one thing a node saw, as one line of its event stream (the
// -events json flag): the cluster hooks, and the node's own start and
// stop. Node is the node reporting it, Subject the node it is about.
type Event struct {
	At      time.Time `json:"at"`
	Node    string    `json:"node"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject,omitempty"`
	// Reason: a leave's reason, a rebalance's trigger, a partition gain's
	// change reason, a health status.
	Reason string `json:"reason,omitempty"`
	// Partitions: partitions a leaving node led and replicated, or held
	// before it rejoined; Moves: a rebalance's moves.
	Partitions int `json:"partitions,omitempty"`
	Moves      int `json:"moves,omitempty"`
	// Rebalance numbers a rebalance; Duration is a rebalance's duration or
	// a rejoining node's time offline.
	Rebalance int64         `json:"rebalance,omitempty"`
	Duration  time.Duration `json:"duration,omitempty"`
	// Partition, Promoted and NoSource describe a partition gain.
	Partition string `json:"partition,omitempty"`
	Promoted  bool   `json:"promoted,omitempty"`
	NoSource  bool   `json:"no_source,omitempty"`
	// API and HTTP are a ready node's store and ClusterKit addresses.
	API  string `json:"api,omitempty"`
	HTTP string `json:"http,omitempty"`
}

// String renders e for a human log (the log lines integration/docker
// greps for keep this form).
func (e Event) String() string {
	var s string
	switch e.Kind {
	case EventReady:
		s = fmt.Sprintf("ready: store on http://%s/kv/{key}, ClusterKit on http://%s", e.API, e.HTTP)
	case EventJoin:
		s = fmt.Sprintf("[join] %s joined (cluster size %d)", e.Subject, e.Partitions)
	case EventRejoin:
		s = fmt.Sprintf("[rejoin] %s is back after %v; it held %d partitions", e.Subject, e.Duration.Round(time.Millisecond), e.Partitions)
	case EventLeave:
		s = fmt.Sprintf("[leave] %s left (%s); it served %d partitions", e.Subject, e.Reason, e.Partitions)
	case EventRebalanceStart:
		s = fmt.Sprintf("[rebalance #%d] start (trigger %s by %s, %d moves)", e.Rebalance, e.Reason, e.Subject, e.Moves)
	case EventRebalanceComplete:
		s = fmt.Sprintf("[rebalance #%d] complete in %v", e.Rebalance, e.Duration.Round(time.Millisecond))
	case EventPartitionGain:
		s = fmt.Sprintf("[partition] gains %s (%s, promoted %v, no source %v)", e.Partition, e.Reason, e.Promoted, e.NoSource)
	case EventHealth:
		s = fmt.Sprintf("[health] %s", e.Reason)
	default:
		s = e.Kind
	}
	return e.Node + ": " + s
}

// reportEvents registers hooks on ck that pass every cluster event to fn
// (called on ClusterKit's hook goroutines, one event at a time except
// partition gains).
func reportEvents(ck *clusterkit.ClusterKit, fn func(Event)) {
	me := ck.GetMyNodeID()
	ev := func(kind string, at time.Time) Event { return Event{At: at, Node: me, Kind: kind} }
	ck.OnNodeJoin(func(e *clusterkit.NodeJoinEvent) {
		x := ev(EventJoin, e.Timestamp)
		x.Subject, x.Partitions = e.Node.ID, e.ClusterSize
		fn(x)
	})
	ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) {
		x := ev(EventRejoin, e.Timestamp)
		x.Subject, x.Duration, x.Partitions = e.Node.ID, e.OfflineDuration, len(e.PartitionsBeforeLeave)
		fn(x)
	})
	ck.OnNodeLeave(func(e *clusterkit.NodeLeaveEvent) {
		x := ev(EventLeave, e.Timestamp)
		x.Subject, x.Reason, x.Partitions = e.Node.ID, string(e.Reason), len(e.PartitionsOwned)+len(e.PartitionsReplica)
		fn(x)
	})
	ck.OnRebalanceStart(func(e *clusterkit.RebalanceEvent) {
		x := ev(EventRebalanceStart, e.Timestamp)
		x.Rebalance, x.Reason, x.Subject, x.Moves = e.ID, string(e.Trigger), e.TriggerNodeID, e.PartitionsToMove
		fn(x)
	})
	ck.OnRebalanceComplete(func(e *clusterkit.RebalanceEvent, d time.Duration) {
		x := ev(EventRebalanceComplete, time.Now())
		x.Rebalance, x.Reason, x.Subject, x.Moves, x.Duration = e.ID, string(e.Trigger), e.TriggerNodeID, e.PartitionsToMove, d
		fn(x)
	})
	ck.OnPartitionChange(func(_ context.Context, e *clusterkit.PartitionChangeEvent) error {
		if e.CopyToNode != nil && e.CopyToNode.ID == me {
			x := ev(EventPartitionGain, e.Timestamp)
			x.Partition, x.Reason, x.Promoted, x.NoSource = e.PartitionID, string(e.ChangeReason), e.Promoted, e.NoSource
			fn(x)
		}
		return nil
	})
	ck.OnClusterHealthChange(func(e *clusterkit.ClusterHealthEvent) {
		x := ev(EventHealth, e.Timestamp)
		x.Reason = string(e.Status)
		fn(x)
	})
}
