package clusterkit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// recorder records every hook a node delivers, in delivery order.
type recorder struct {
	mu     sync.Mutex
	events []string
	leaves []clusterkit.NodeLeaveEvent
	rejoin []clusterkit.NodeRejoinEvent
	joins  []clusterkit.NodeJoinEvent
	change []clusterkit.PartitionChangeEvent
	starts []clusterkit.RebalanceEvent
	done   []clusterkit.RebalanceEvent
	health []clusterkit.ClusterHealthEvent
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

// attach registers the recorder's hooks on ck.
func (r *recorder) attach(ck *clusterkit.ClusterKit) {
	ck.OnNodeJoin(func(e *clusterkit.NodeJoinEvent) {
		r.mu.Lock()
		r.joins = append(r.joins, *e)
		r.mu.Unlock()
		r.add("join:" + e.Node.ID)
	})
	ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) {
		r.mu.Lock()
		r.rejoin = append(r.rejoin, *e)
		r.mu.Unlock()
		r.add("rejoin:" + e.Node.ID)
	})
	ck.OnNodeLeave(func(e *clusterkit.NodeLeaveEvent) {
		r.mu.Lock()
		r.leaves = append(r.leaves, *e)
		r.mu.Unlock()
		r.add("leave:" + e.Node.ID + ":" + string(e.Reason))
	})
	ck.OnRebalanceStart(func(e *clusterkit.RebalanceEvent) {
		r.mu.Lock()
		r.starts = append(r.starts, *e)
		r.mu.Unlock()
		r.add(fmt.Sprintf("start:%d:%s:%s", e.ID, e.Trigger, e.TriggerNodeID))
	})
	ck.OnRebalanceComplete(func(e *clusterkit.RebalanceEvent, d time.Duration) {
		r.mu.Lock()
		r.done = append(r.done, *e)
		r.mu.Unlock()
		r.add(fmt.Sprintf("complete:%d", e.ID))
	})
	ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
		r.mu.Lock()
		r.change = append(r.change, *e)
		r.mu.Unlock()
		r.add(fmt.Sprintf("change:%s:%s", e.PartitionID, e.CopyToNode.ID))
		return nil
	})
	ck.OnClusterHealthChange(func(e *clusterkit.ClusterHealthEvent) {
		r.mu.Lock()
		r.health = append(r.health, *e)
		r.mu.Unlock()
		r.add("health:" + string(e.Status))
	})
}

// snapshot returns a copy of the recorded event names.
func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recorder) leaveEvents() []clusterkit.NodeLeaveEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]clusterkit.NodeLeaveEvent(nil), r.leaves...)
}

func (r *recorder) rejoinEvents() []clusterkit.NodeRejoinEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]clusterkit.NodeRejoinEvent(nil), r.rejoin...)
}

// index returns the position of the first event named s, or -1.
func index(events []string, s string) int {
	for i, e := range events {
		if e == s {
			return i
		}
	}
	return -1
}

// contextTimeout is a test-sized context.
func contextTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
