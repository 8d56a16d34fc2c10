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
	readyRev  int64 // revision of the last change of a ready record
	history   map[string]historyRecord
	ready     map[string]rawReady       // not decoded: see readyCache
	failing   map[string][]failingEntry // node → its failing handoffs (handoff_record.go)
	assign    *assignment
	// parts is the map's parts (format 2); legacyRev the mod revision of
	// the single-key map of format 1 (0: absent), adopted while no
	// format-2 version is applied; configFormat the config's format.
	parts        *mapParts
	legacyRev    int64
	configFormat int
	rebalance    *rebalanceRecord
	request      *rebalanceRequest
	control      map[controlAction]controlRequest // operator requests, applied or not
	leaders      map[string]leaderKey             // election keys
	// leaderKeyName is the key of leaders with the lowest create revision
	// ("" when there is none): the current leader's.
	leaderKeyName string
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

func newView(partitions int) *view {
	return &view{parts: newMapParts(partitions),
		members: map[string]memberRecord{}, history: map[string]historyRecord{}, ready: map[string]rawReady{},
		failing: map[string][]failingEntry{},
		leaders: map[string]leaderKey{}, departed: map[string]departure{}, control: map[controlAction]controlRequest{},
	}
}

// leader returns the current leader's node ID: the value of the election
// key with the lowest create revision.
func (v *view) leader() string { return v.leaders[v.leaderKeyName].value }

// setLeaderKey applies a put (put) or delete of election key name. A put
// takes the leadership only with a lower create revision; only a change
// of the leader's own key looks at every key, so a candidate's arrival
// costs O(1), not O(candidates).
func (v *view) setLeaderKey(name string, k leaderKey, put bool) {
	old := v.leaders[name]
	if put {
		v.leaders[name] = k
	} else {
		delete(v.leaders, name)
	}
	cur, ok := v.leaders[v.leaderKeyName]
	switch {
	case put && (!ok || k.createRev < cur.createRev):
		v.leaderKeyName = name
	case name == v.leaderKeyName && (!put || k.createRev != old.createRev):
		v.leaderKeyName = ""
		for n, c := range v.leaders {
			if best, ok := v.leaders[v.leaderKeyName]; !ok || c.createRev < best.createRev {
				v.leaderKeyName = n
			}
		}
	}
}

// pendingManual returns the manual request the leader has not started yet.
func (v *view) pendingManual() *rebalanceRequest {
	if v.request == nil || (v.rebalance != nil && v.rebalance.LastRequestID == v.request.ID) {
		return nil
	}
	return v.request
}

// reconcileInput copies what reconcile needs but the ready records (the
// caller decodes v.ready: run.plannerInput); the copy is the caller's.
func (v *view) reconcileInput(cfg clusterConfig, now time.Time) reconcileInput {
	in := reconcileInput{
		cfg: cfg, members: maps.Clone(v.members), assign: v.assign,
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

// decoder applies watch batches of one cluster's prefix to a view. A value
// it cannot use (malformed, foreign, of an unknown format) is ignored with
// one logged error and a count in decodeErrors (by key kind); the view
// keeps the last good state. Ready records are kept as written and
// checked where they are decoded, on the leader (readyCache.records).
type decoder struct {
	keys         keys
	partitions   int
	log          *zap.Logger
	decodeErrors func(kind string) // may be nil
}

// bad reports a value the decoder ignores.
func (d decoder) bad(kind, key string, err error) {
	d.log.Error("ignoring unusable value in etcd", zap.String("key", key), zap.String("kind", kind), zapErr(err))
	if d.decodeErrors != nil {
		d.decodeErrors(kind)
	}
}

// apply applies b to v and returns its member changes in order.
func (d decoder) apply(v *view, b watcher.Batch, now time.Time) []memberChange {
	var changes []memberChange
	mapTouched := false
	for _, e := range b.Events {
		if id, ok := strings.CutPrefix(e.Key, d.keys.membersPrefix()); ok {
			if c, ok := d.applyMember(v, id, e, now); ok {
				changes = append(changes, c)
			}
			continue
		}
		if rel, ok := strings.CutPrefix(e.Key, d.keys.mapPrefix()); ok {
			d.applyMapPart(v, rel, e)
			mapTouched = true
			continue
		}
		d.applyOther(v, e)
	}
	if mapTouched && v.parts.pending != nil {
		d.commitMap(v)
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
		err := json.Unmarshal(e.Value, &rec)
		if err == nil {
			err = checkMemberAddr(rec.Addr)
		}
		if err != nil {
			d.bad("member", e.Key, err)
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
	if !existed { // its record was unreadable (the watcher keeps no values)
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
	if d.applyOperator(v, e) || d.applyFailing(v, e) {
		return
	}
	switch key := e.Key; {
	case strings.HasPrefix(key, k.historyPrefix()):
		id := strings.TrimPrefix(key, k.historyPrefix())
		var h historyRecord
		if !put {
			delete(v.history, id)
		} else if err := json.Unmarshal(e.Value, &h); err != nil {
			d.bad("history", key, err)
		} else {
			v.history[id] = h
		}
	case strings.HasPrefix(key, k.readyPrefix()):
		id := strings.TrimPrefix(key, k.readyPrefix())
		v.readyRev = e.ModRevision
		if put {
			v.ready[id] = rawReady{value: e.Value, rev: e.ModRevision}
		} else {
			delete(v.ready, id)
		}
	case strings.HasPrefix(key, k.leaderPrefix()):
		v.setLeaderKey(key, leaderKey{value: string(e.Value), createRev: e.CreateRevision}, put)
	case key == k.assignment():
		d.applyLegacy(v, e)
	case key == k.config():
		var c clusterConfig
		if put && json.Unmarshal(e.Value, &c) == nil {
			v.configFormat = c.FormatVersion
		}
	case key == k.rebalance():
		var r rebalanceRecord
		if !put {
			break
		} else if err := json.Unmarshal(e.Value, &r); err != nil {
			d.bad("rebalance", key, err)
		} else {
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
