package clusterkit

import (
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// RebalanceStatus is the current or last rebalance as the map shows it:
// what started it, how many moves it planned, and how many handoffs are
// still incoming (Running) or when it completed.
type RebalanceStatus struct {
	ID            int64        `json:"id"`
	Trigger       ChangeReason `json:"trigger"`
	TriggerNodeID string       `json:"trigger_node,omitempty"`
	Moves         int          `json:"moves"`
	Incoming      int          `json:"incoming"`
	Running       bool         `json:"running"`
	StartedAt     time.Time    `json:"started_at"`
	CompletedAt   time.Time    `json:"completed_at,omitzero"`
}

// clusterState returns the snapshot, the operator orders and the
// rebalance status, read together (the snapshot is published under the
// view's lock, so it matches the view). Before Start: the snapshot only.
func (ck *ClusterKit) clusterState() (*snapshot, []NodeOperationStatus, *RebalanceStatus) {
	r := ck.active.Load()
	if r == nil || !ck.started.Load() { // r.follower is set during start
		return ck.snap.Load(), nil, nil
	}
	var s *snapshot
	var ops []NodeOperationStatus
	var st *RebalanceStatus
	r.follower.read(func(v *view) {
		s, ops = ck.snap.Load(), v.nodeOperations()
		if rb := v.rebalance; rb != nil {
			st = &RebalanceStatus{ID: rb.ID, Trigger: rb.Trigger, TriggerNodeID: rb.TriggerNodeID, Moves: rb.Moves,
				Running: rb.running(), StartedAt: rb.StartedAt, CompletedAt: rb.CompletedAt}
			if v.assign != nil {
				st.Incoming = v.assign.incomingCount()
			}
		}
	})
	return s, ops, st
}

// noteEtcdRoles records the roles of the etcd members by name (node ID).
func (r *run) noteEtcdRoles(members []*etcdserverpb.Member) {
	roles := make(map[string]string, len(members))
	for _, m := range members {
		if m.Name == "" {
			continue // added, not started yet
		}
		roles[m.Name] = "voter"
		if m.IsLearner {
			roles[m.Name] = "learner"
		}
	}
	r.etcdRoles.Store(&roles)
}

// etcdRoles returns the last recorded etcd roles by node ID (empty in
// external-etcd mode or before the first listing).
func (ck *ClusterKit) etcdRoles() map[string]string {
	if r := ck.active.Load(); r != nil {
		if m := r.etcdRoles.Load(); m != nil {
			return *m
		}
	}
	return nil
}
