package clusterkit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
)

// HealthCheck returns this node's view of the cluster's health:
// healthy (every partition has ReplicationFactor serving replicas),
// degraded (every partition has a primary, but some are under-replicated,
// a node is unhealthy, or a handoff is failing), or critical (a partition
// has no live replica, or this node lost etcd or its membership).
func (ck *ClusterKit) HealthCheck() *HealthStatus {
	h := &HealthStatus{CheckedAt: time.Now()}
	rt := ck.rt()
	s := ck.snap.Load()
	if rt != nil {
		if w := rt.watch.Load(); w != nil {
			h.EtcdConnected = w.Connected()
		}
	}
	if reg := ck.reg.Load(); reg != nil {
		select {
		case <-reg.Done():
		default:
			h.Registered = true
		}
	}
	h.TotalNodes = len(s.members)
	for _, n := range s.members {
		if n.Status == NodeUnhealthy {
			h.UnhealthyNodeIDs = append(h.UnhealthyNodeIDs, n.ID)
		} else {
			h.HealthyNodes++
		}
	}
	for i := range s.partitions {
		live := 0
		for _, n := range s.serving[i] {
			if n.Status != NodeOffline {
				live++
			}
		}
		if live == 0 {
			h.PartitionsWithoutNode++
		} else if live < ck.opts.ReplicationFactor {
			h.UnderReplicated++
		}
		if slices.Contains(s.partitions[i].IncomingNodes, ck.opts.NodeID) {
			h.PendingHandoffs++
		}
	}
	if rt != nil {
		rt.mu.Lock()
		h.FailedHandoffs = len(rt.failing)
		rt.mu.Unlock()
	}
	var critical, degraded []string
	if !h.EtcdConnected {
		critical = append(critical, "this node is not connected to etcd")
	}
	if !h.Registered {
		critical = append(critical, "this node is not registered")
	}
	if len(s.partitions) == 0 {
		critical = append(critical, "no partition map")
	}
	if h.PartitionsWithoutNode > 0 {
		critical = append(critical, fmt.Sprintf("%d partitions have no live replica", h.PartitionsWithoutNode))
	}
	if h.UnderReplicated > 0 {
		degraded = append(degraded, fmt.Sprintf("%d partitions are under-replicated (fewer than %d serving replicas)", h.UnderReplicated, ck.opts.ReplicationFactor))
	}
	if len(h.UnhealthyNodeIDs) > 0 {
		degraded = append(degraded, fmt.Sprintf("unhealthy nodes: %v", h.UnhealthyNodeIDs))
	}
	if h.FailedHandoffs > 0 {
		degraded = append(degraded, fmt.Sprintf("%d handoffs to this node are failing", h.FailedHandoffs))
	}
	switch {
	case len(critical) > 0:
		h.Status = HealthCritical
	case len(degraded) > 0:
		h.Status = HealthDegraded
	default:
		h.Status = HealthHealthy
	}
	h.Reasons = append(critical, degraded...)
	return h
}

// checkHealth reports a change of the health status to the hooks.
func (t *tracker) checkHealth(now time.Time) {
	t.ck.rt().checkHealth(now)
}

func (rt *runtime) checkHealth(now time.Time) {
	ck := rt.ck
	// One lock around compute, compare and emit (which never blocks), so
	// that the tracker and the health loop cannot deliver two statuses in
	// the wrong order.
	rt.healthMu.Lock()
	defer rt.healthMu.Unlock()
	h := ck.HealthCheck()
	if h.Status == rt.health {
		return
	}
	rt.health = h.Status
	ev := &ClusterHealthEvent{HealthyNodes: h.HealthyNodes, UnhealthyNodes: len(h.UnhealthyNodeIDs), TotalNodes: h.TotalNodes,
		Status: h.Status, UnhealthyNodeIDs: h.UnhealthyNodeIDs, Reasons: h.Reasons, Timestamp: now}
	ck.log.Info("cluster health changed", zap.String("status", h.Status), zap.Strings("reasons", h.Reasons))
	emit(ck, "cluster_health", &ck.hooks.clusterHealth, func(fn ClusterHealthHandler) { fn(ev) }, false)
}

// healthLoop re-evaluates health every second (etcd connectivity changes
// without a watch event) and runs the application probe.
func (rt *runtime) healthLoop() {
	defer rt.wg.Done()
	ck := rt.ck
	hc := ck.opts.HealthCheck
	probe := hc.Enabled && ck.opts.HealthProbe != nil
	interval := time.Second
	if probe {
		interval = min(interval, hc.Interval)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failures := 0
	nextProbe := time.Now()
	for {
		select {
		case <-rt.ctx.Done():
			return
		case now := <-tick.C:
			if probe && !now.Before(nextProbe) {
				nextProbe = now.Add(hc.Interval)
				if rt.runProbe() {
					failures = 0
					rt.setWantHealthy(true)
				} else if failures++; failures >= hc.FailureThreshold {
					rt.setWantHealthy(false)
				}
			}
			// Publish until the member record says what the probe says
			// (an update can fail; a new registration starts over).
			rt.publishHealth()
			rt.syncWatchStats()
			rt.checkHealth(now)
		}
	}
}

func (rt *runtime) setWantHealthy(healthy bool) {
	rt.mu.Lock()
	rt.wantHealthy = healthy
	rt.mu.Unlock()
}

// runProbe calls the application probe with its timeout; a panic fails it.
func (rt *runtime) runProbe() (ok bool) {
	ck := rt.ck
	ctx, cancel := context.WithTimeout(rt.ctx, ck.opts.HealthCheck.Timeout)
	defer cancel()
	err := callHook("health_probe", ck.metrics, func() error { return ck.opts.HealthProbe(ctx) })
	if err != nil {
		ck.log.Warn("health probe failed", zapErr(err))
	}
	return err == nil
}

// publishHealth writes the probe's verdict into this node's member record
// when the record says otherwise.
func (rt *runtime) publishHealth() {
	ck := rt.ck
	rt.mu.Lock()
	if rt.wantHealthy == rt.publishedHealthy || rt.record.State != memberActive {
		rt.mu.Unlock()
		return
	}
	rt.record.Healthy = rt.wantHealthy
	rec := rt.record
	rt.mu.Unlock()
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	reg := ck.reg.Load()
	ctx, cancel := context.WithTimeout(rt.ctx, requestTimeout)
	defer cancel()
	if err := reg.Update(ctx, b); err != nil {
		ck.metrics.etcdErrors.WithLabelValues("member_update").Inc()
		ck.log.Warn("publish health failed", zapErr(err))
		return
	}
	rt.mu.Lock()
	if ck.reg.Load() == reg {
		rt.publishedHealthy = rec.Healthy
	}
	rt.mu.Unlock()
	ck.log.Info("node health changed", zap.Bool("healthy", rec.Healthy))
}
