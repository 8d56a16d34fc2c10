package clusterkit

import (
	"context"
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
	h := &HealthStatus{CheckedAt: time.Now(), EtcdConnected: ck.etcdConnected()}
	s := ck.snap.Load()
	if r := ck.active.Load(); r != nil {
		if reg := r.reg.Load(); reg != nil {
			select {
			case <-reg.Done():
			default:
				h.Registered = true
			}
		}
		h.FailedHandoffs = r.ready.failingCount()
		h.Handoffs = ck.FailingHandoffs()
		for _, f := range h.Handoffs {
			if f.Stuck {
				h.StuckHandoffs++
			}
		}
	}
	h.TotalNodes = len(s.members)
	h.UnhealthyNodeIDs = slices.Clone(s.unhealthy)
	h.HealthyNodes = h.TotalNodes - len(s.unhealthy)
	for live, n := range s.live {
		if live == 0 {
			h.PartitionsWithoutNode += n
		} else if live < ck.opts.ReplicationFactor {
			h.UnderReplicated += n
		}
	}
	h.PendingHandoffs = s.mine.incoming
	h.Maintenance, h.AwayNodes = s.maintenance, slices.Clone(s.away)
	for _, op := range ck.NodeOperations() {
		if op.Operation == NodeCordoned {
			h.CordonedNodes = append(h.CordonedNodes, op.Node)
		} else {
			h.DrainingNodes = append(h.DrainingNodes, op.Node)
			h.DrainingPartitions += op.Partitions
		}
	}
	h.Status, h.Reasons = judgeHealth(h, s.count > 0, ck.opts.ReplicationFactor)
	return h
}

// judgeHealth gives the status of h and the reasons, critical ones first.
func judgeHealth(h *HealthStatus, hasMap bool, rf int) (HealthState, []string) {
	var critical, degraded []string
	if !h.EtcdConnected {
		critical = append(critical, "this node is not connected to etcd")
	}
	if !h.Registered {
		critical = append(critical, "this node is not registered")
	}
	if !hasMap {
		critical = append(critical, "no partition map")
	}
	if h.PartitionsWithoutNode > 0 {
		critical = append(critical, fmt.Sprintf("%d partitions have no live replica", h.PartitionsWithoutNode))
	}
	if h.UnderReplicated > 0 {
		degraded = append(degraded, fmt.Sprintf("%d partitions are under-replicated (fewer than %d serving replicas)", h.UnderReplicated, rf))
	}
	if len(h.UnhealthyNodeIDs) > 0 {
		degraded = append(degraded, fmt.Sprintf("unhealthy nodes: %v", h.UnhealthyNodeIDs))
	}
	if h.Maintenance != "" {
		degraded = append(degraded, "maintenance mode (placement frozen): "+h.Maintenance)
	}
	if len(h.AwayNodes) > 0 {
		degraded = append(degraded, fmt.Sprintf("away nodes (lease expired, slots reserved): %v", h.AwayNodes))
	}
	if h.DrainingPartitions > 0 {
		degraded = append(degraded, fmt.Sprintf("draining nodes %v still hold %d partitions", h.DrainingNodes, h.DrainingPartitions))
	}
	for _, f := range h.Handoffs {
		if f.Stuck {
			degraded = append(degraded, fmt.Sprintf("handoff of %s to %s failing since %s (%d attempts, last error: %s); CancelHandoff gives it up",
				PartitionID(f.Partition), f.Node, f.Since.UTC().Format(time.RFC3339), f.Attempts, f.LastError))
		}
	}
	if h.FailedHandoffs > 0 {
		degraded = append(degraded, fmt.Sprintf("%d handoffs to this node are failing", h.FailedHandoffs))
	}
	status := HealthHealthy
	switch {
	case len(critical) > 0:
		status = HealthCritical
	case len(degraded) > 0:
		status = HealthDegraded
	}
	return status, append(critical, degraded...)
}

// checkHealth reports a change of the health status to the hooks.
func (r *run) checkHealth(now time.Time) {
	// One lock around compute, compare and notify (which never blocks), so
	// that the follower and the health loop cannot deliver two statuses in
	// the wrong order.
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	h := r.ck.HealthCheck()
	if h.Status == r.health && h.StuckHandoffs == r.healthStuck {
		return
	}
	if h.StuckHandoffs != r.healthStuck {
		r.ready.wakeUp() // the failing-handoffs record says which are stuck
	}
	if h.StuckHandoffs > r.healthStuck {
		r.ck.log.Warn("handoffs stuck beyond HandoffTimeout", zap.Int("stuck", h.StuckHandoffs), zap.Duration("timeout", r.ck.opts.HandoffTimeout))
	}
	r.health, r.healthStuck = h.Status, h.StuckHandoffs
	ev := &ClusterHealthEvent{HealthyNodes: h.HealthyNodes, UnhealthyNodes: len(h.UnhealthyNodeIDs), TotalNodes: h.TotalNodes,
		Status: h.Status, UnhealthyNodeIDs: h.UnhealthyNodeIDs, Reasons: h.Reasons, Timestamp: now}
	r.ck.log.Info("cluster health changed", zap.String("status", string(h.Status)), zap.Strings("reasons", h.Reasons))
	n := r.notifier
	notify(n, "cluster_health", &n.hooks.clusterHealth, func(fn ClusterHealthHandler) { fn(ev) }, false)
}

// healthLoop re-evaluates health every second (etcd connectivity changes
// without a watch event) and runs the application probe, until the run
// ends.
func (r *run) healthLoop() {
	hc := r.ck.opts.HealthCheck
	probe := hc.Enabled && r.ck.opts.HealthProbe != nil
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
		case <-r.ctx.Done():
			return
		case now := <-tick.C:
			if probe && !now.Before(nextProbe) {
				nextProbe = now.Add(hc.Interval)
				if r.runProbe() {
					failures = 0
					r.setWantHealthy(true)
				} else if failures++; failures >= hc.FailureThreshold {
					r.setWantHealthy(false)
				}
			}
			// Publish until the member record says what the probe says
			// (an update can fail; a new registration starts over).
			r.publishHealth()
			r.syncWatchStats()
			r.checkHealth(now)
		}
	}
}

func (r *run) setWantHealthy(healthy bool) {
	r.mu.Lock()
	r.wantHealthy = healthy
	r.mu.Unlock()
}

// runProbe calls the application probe with its timeout; a panic fails it.
func (r *run) runProbe() (ok bool) {
	ck := r.ck
	ctx, cancel := context.WithTimeout(r.ctx, ck.opts.HealthCheck.Timeout)
	defer cancel()
	err := callHook("health_probe", ck.metrics, func() error { return ck.opts.HealthProbe(ctx) })
	if err != nil {
		ck.log.Warn("health probe failed", zapErr(err))
	}
	return err == nil
}
