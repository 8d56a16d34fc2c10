package clusterkit

import (
	"encoding/json"
	"maps"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// view is this node's copy of the cluster state in etcd, decoded from one
// watch of the cluster's prefix, so every change arrives in etcd's order
// and a Txn's changes arrive together. The follower goroutine is its only
// writer.
type view struct {
	rev       int64
	members   map[string]memberRecord
	memberRev int64 // revision of the last membership change
	history   map[string]historyRecord
	ready     map[string]readyRecord
	assign    *assignment
	assignRev int64 // mod revision of the assignment key
	rebalance *rebalanceRecord
	request   *rebalanceRequest
	control   map[controlAction]controlRequest // operator requests, applied or not
	leaders   map[string]leaderKey             // election keys
	// departed holds, per node whose member key was deleted and has not
	// come back, how it left.
	departed map[string]departure
	// operator holds the operator records (cordon, drain) by node.
	operator map[string]operatorRecord
}

// rebalanceRequest is the value of rebalance-request (a manual
// rebalance); it has the form of every operator request.
type rebalanceRequest = controlRequest

type leaderKey struct {
	value     string
	createRev int64
}

func newView() *view {
	return &view{
		members: map[string]memberRecord{}, history: map[string]historyRecord{}, ready: map[string]readyRecord{},
		leaders: map[string]leaderKey{}, departed: map[string]departure{}, control: map[controlAction]controlRequest{},
	}
}

// leader returns the current leader's node ID: the election key with the
// lowest create revision.
func (v *view) leader() string {
	best, id := int64(0), ""
	for _, k := range v.leaders {
		if best == 0 || k.createRev < best {
			best, id = k.createRev, k.value
		}
	}
	return id
}

// pendingManual returns the manual request the leader has not started yet.
func (v *view) pendingManual() *rebalanceRequest {
	if v.request == nil || (v.rebalance != nil && v.rebalance.LastRequestID == v.request.ID) {
		return nil
	}
	return v.request
}

// reconcileInput copies what reconcile needs; the copy is the leader's.
func (v *view) reconcileInput(cfg clusterConfig, now time.Time) reconcileInput {
	in := reconcileInput{
		cfg: cfg, members: maps.Clone(v.members), ready: maps.Clone(v.ready), assign: v.assign,
		rebalance: v.rebalance, history: maps.Clone(v.history), departed: maps.Clone(v.departed), now: now,
	}
	if r := v.pendingManual(); r != nil {
		in.manual, in.manualNode = r.ID, r.Node
	}
	in.control = v.pendingControl()
	in.operator = maps.Clone(v.operator)
	return in
}

// pendingControl returns the operator requests the leader has not applied.
func (v *view) pendingControl() map[controlAction]controlRequest {
	var out map[controlAction]controlRequest
	for a, req := range v.control {
		if v.assign != nil && v.assign.Served[a] == req.ID {
			continue
		}
		if out == nil {
			out = map[controlAction]controlRequest{}
		}
		out[a] = req
	}
	return out
}

// memberChange is one change of a member key, decoded from a batch.
type memberChange struct {
	put    bool
	rec    memberRecord  // the new record, or the deleted one
	prev   *memberRecord // for a put of an existing key: the record it replaced
	reason LeaveReason   // for a delete
	// departure is how the node last left, for a put of a node that had
	// left (seen by this node's watch).
	departure *departure
}

// decoder applies watch batches of one cluster's prefix to a view.
type decoder struct {
	keys       keys
	partitions int
	log        *zap.Logger
}

// apply applies b to v and returns its member changes in order.
func (d decoder) apply(v *view, b watcher.Batch, now time.Time) []memberChange {
	var changes []memberChange
	for _, e := range b.Events {
		if id, ok := strings.CutPrefix(e.Key, d.keys.membersPrefix()); ok {
			if c, ok := d.applyMember(v, id, e, now); ok {
				changes = append(changes, c)
			}
			continue
		}
		d.applyOther(v, e)
	}
	v.rev = b.Revision
	return changes
}

// applyMember applies a member key's change; false for a malformed record.
func (d decoder) applyMember(v *view, id string, e watcher.Event, now time.Time) (memberChange, bool) {
	v.memberRev = e.ModRevision
	old, existed := v.members[id]
	if e.Type == watcher.Put {
		var rec memberRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			d.log.Warn("ignoring malformed member record", zap.String("key", e.Key), zapErr(err))
			return memberChange{}, false
		}
		rec.ID, rec.Lease = id, e.Lease
		v.members[id] = rec
		c := memberChange{put: true, rec: rec}
		if existed {
			c.prev = &old
		} else if dep, ok := v.departed[id]; ok {
			c.departure = &dep
			delete(v.departed, id)
		}
		return c, true
	}
	if !existed && json.Unmarshal(e.PrevValue, &old) != nil {
		old = memberRecord{ID: id}
	}
	reason := LeaveLeaseExpired
	switch old.State {
	case memberLeaving:
		reason = LeaveGraceful
	case memberRemoved:
		reason = LeaveRemovedByAdmin
	}
	delete(v.members, id)
	v.departed[id] = departure{Record: old, Reason: reason, At: now}
	return memberChange{rec: old, reason: reason}, true
}

// applyOther applies a change of any key but a member's.
func (d decoder) applyOther(v *view, e watcher.Event) {
	k, put := d.keys, e.Type == watcher.Put
	if d.applyOperator(v, e) {
		return
	}
	switch key := e.Key; {
	case strings.HasPrefix(key, k.historyPrefix()):
		id := strings.TrimPrefix(key, k.historyPrefix())
		var h historyRecord
		if put && json.Unmarshal(e.Value, &h) == nil {
			v.history[id] = h
		} else {
			delete(v.history, id)
		}
	case strings.HasPrefix(key, k.readyPrefix()):
		id := strings.TrimPrefix(key, k.readyPrefix())
		if !put {
			delete(v.ready, id)
		} else if r, err := unmarshalReady(e.Value); err == nil {
			v.ready[id] = r
		}
	case strings.HasPrefix(key, k.leaderPrefix()):
		if put {
			v.leaders[key] = leaderKey{value: string(e.Value), createRev: e.CreateRevision}
		} else {
			delete(v.leaders, key)
		}
	case key == k.assignment() && put:
		a, err := unmarshalAssignment(e.Value)
		if err != nil || len(a.Partitions) != d.partitions {
			d.log.Error("ignoring malformed assignment", zapErr(err))
			return
		}
		v.assign, v.assignRev = a, e.ModRevision
	case key == k.rebalance():
		var r rebalanceRecord
		if put && json.Unmarshal(e.Value, &r) == nil {
			v.rebalance = &r
		}
	case strings.HasPrefix(key, k.controlRequestPrefix()):
		a := controlAction(strings.TrimPrefix(key, k.controlRequestPrefix()))
		var r controlRequest
		if put && json.Unmarshal(e.Value, &r) == nil {
			v.control[a] = r
		} else {
			delete(v.control, a)
		}
	case key == k.rebalanceRequest():
		var r rebalanceRequest
		if put && json.Unmarshal(e.Value, &r) == nil {
			v.request = &r
		}
	}
}
