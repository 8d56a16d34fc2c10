package clusterkit

import "github.com/prometheus/client_golang/prometheus"

// opsCollector returns the scrape-time gauges of the operator's orders,
// computed from m.nodeOps (set by New):
//
//	clusterkit_nodes_cordoned               nodes cordoned
//	clusterkit_nodes_draining               nodes draining (done or not)
//	clusterkit_drain_partitions_remaining   partitions the draining nodes still serve or receive
//	clusterkit_moves_waiting                moves the move limits hold back
//	clusterkit_handoffs_stuck               this node's handoffs failing longer than HandoffTimeout
func (m *metrics) opsCollector() prometheus.Collector {
	return opsGauges{
		cordoned:  prometheus.NewDesc("clusterkit_nodes_cordoned", "Nodes cordoned by an operator (they get no new partitions).", nil, nil),
		draining:  prometheus.NewDesc("clusterkit_nodes_draining", "Nodes being drained by an operator, finished or not.", nil, nil),
		remaining: prometheus.NewDesc("clusterkit_drain_partitions_remaining", "Partitions the draining nodes still serve or receive.", nil, nil),
		waiting: prometheus.NewDesc("clusterkit_moves_waiting",
			"Planned moves (partition, receiving node) that MaxConcurrentMoves or MaxConcurrentMovesPerNode hold back.", nil, nil),
		stuck: prometheus.NewDesc("clusterkit_handoffs_stuck",
			"Partitions this node receives whose handoff has been failing longer than Options.HandoffTimeout.", nil, nil),
		m: m,
	}
}

type opsGauges struct {
	cordoned, draining, remaining, waiting, stuck *prometheus.Desc
	m                                             *metrics
}

func (g opsGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.cordoned
	ch <- g.draining
	ch <- g.remaining
	ch <- g.waiting
	ch <- g.stuck
}

func (g opsGauges) Collect(ch chan<- prometheus.Metric) {
	var cordoned, draining, remaining, waiting, stuck int
	if g.m.failingList != nil {
		for _, f := range g.m.failingList() {
			if f.Stuck {
				stuck++
			}
		}
	}
	if g.m.waitingMoves != nil {
		waiting = g.m.waitingMoves()
	}
	if g.m.nodeOps != nil {
		for _, op := range g.m.nodeOps() {
			if op.Operation == NodeCordoned {
				cordoned++
			} else {
				draining++
				remaining += op.Partitions
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(g.cordoned, prometheus.GaugeValue, float64(cordoned))
	ch <- prometheus.MustNewConstMetric(g.draining, prometheus.GaugeValue, float64(draining))
	ch <- prometheus.MustNewConstMetric(g.remaining, prometheus.GaugeValue, float64(remaining))
	ch <- prometheus.MustNewConstMetric(g.waiting, prometheus.GaugeValue, float64(waiting))
	ch <- prometheus.MustNewConstMetric(g.stuck, prometheus.GaugeValue, float64(stuck))
}
