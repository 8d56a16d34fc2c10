package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// clusterRows measures everything but the KV and scale tables and returns
// the table's rows.
func clusterRows(ctx context.Context, c config) ([]row, error) {
	progress("lookups")
	single, parallel, churn, err := benchLookups(ctx, c.trials)
	if err != nil {
		return nil, fmt.Errorf("lookups: %w", err)
	}
	rows := []row{
		lookupRow("GetPartition, one goroutine", single, "<1 ms", "215 ns, 1 alloc"),
		lookupRow("GetPartition, all cores (RunParallel)", parallel, "", ""),
		lookupRow("GetPartition, one goroutine, while a node joins and leaves", churn, "", ""),
	}
	var rb floats
	for _, r := range churn {
		rb = append(rb, float64(r.rebalances))
	}
	rows = append(rows, row{what: "maps received during that measurement", ours: rb.cell("%.0f", "maps")})

	for _, n := range c.formation {
		var ds durations
		for t := range c.trials {
			progress(fmt.Sprintf("formation of %d, trial %d", n, t+1))
			cl, took, err := formCluster(ctx, c, n)
			if err != nil {
				return nil, fmt.Errorf("formation of %d: %w", n, err)
			}
			cl.Close()
			ds = append(ds, took)
		}
		r := row{what: fmt.Sprintf("formation, %d processes (embedded etcd), first start → all agree", n), ours: ds.cell()}
		if n == 3 {
			r.measured = "4.1 s"
		}
		rows = append(rows, r)
	}

	var ts []faultTrial
	var failed []string
	for t := range c.trials {
		progress(fmt.Sprintf("faults on 10 processes, trial %d", t+1))
		ft, err := runFaultTrial(ctx, c)
		if err != nil {
			// A failed trial is a result, not a reason to stop measuring.
			progress(fmt.Sprintf("fault trial %d failed: %v", t+1, err))
			failed = append(failed, fmt.Sprintf("trial %d: %v", t+1, err))
			continue
		}
		ts = append(ts, ft)
	}
	rows = append(rows, faultRows(ts, c.ttl)...)
	if len(failed) > 0 {
		rows = append(rows, row{what: "fault trials that failed (left out above)",
			ours: fmt.Sprintf("%d of %d: %s", len(failed), c.trials, strings.Join(failed, "; "))})
	}

	progress("external-etcd clients")
	ext, err := externalMemory(ctx, c, 3)
	if err != nil {
		return nil, fmt.Errorf("external clients: %w", err)
	}
	progress("bare etcd clients (the memory floor)")
	floor, err := floorMemory(ctx, 3)
	if err != nil {
		return nil, fmt.Errorf("memory floor: %w", err)
	}
	var voter, plain, learner memories
	var learnerFor durations
	for _, t := range ts {
		voter, plain = append(voter, t.voter...), append(plain, t.plain...)
		learner, learnerFor = append(learner, t.learner...), append(learnerFor, t.learnerFor)
	}
	rows = append(rows,
		row{what: "memory: node with an embedded etcd voter (kvstore process RSS; private = its anonymous memory, the rest is the executable's shared pages; 10 nodes)", ours: voter.cell(), published: "25 MB (10 nodes)", measured: "15–16 MB"},
		row{what: "memory: node whose etcd member joins as a learner after a voter left (largest RSS from its add on, until a node names it a voter; promoted after " + learnerFor.cell() + ": ClusterKit keeps no learner longer)", ours: learner.cell()},
		row{what: "memory: plain client of the embedded voters (RSS, 10 nodes)", ours: plain.cell(), published: "25 MB (10 nodes)", measured: "15–16 MB"},
		row{what: "memory: client of an external etcd (RSS, 3 nodes)", ours: ext.cell()},
		row{what: "memory: the floor, a bare etcd client process without ClusterKit (lease kept alive, a watch, a write every 100 ms, Prometheus over HTTP: integration/bench/etcdfloor; RSS, 3 processes)", ours: floor.cell()},
	)
	return rows, nil
}

func lookupRow(what string, rs []lookupResult, published, measured string) row {
	var ns, allocs floats
	for _, r := range rs {
		ns, allocs = append(ns, r.ns), append(allocs, float64(r.allocs))
	}
	return row{what: what, ours: ns.cell("%.1f", "ns") + ", " + allocs.cell("%.0f", "allocs"), published: published, measured: measured}
}

// faultRows turns the fault trials into rows.
func faultRows(ts []faultTrial, ttl time.Duration) []row {
	pick := func(f func(faultTrial) time.Duration) durations {
		var ds durations
		for _, t := range ts {
			ds = append(ds, f(t))
		}
		return ds
	}
	lease := fmt.Sprintf(" (lease TTL %v)", ttl)
	return []row{
		{what: "formation, 10 processes (embedded etcd), first start → all agree", ours: pick(func(t faultTrial) time.Duration { return t.formed }).cell()},
		{what: "join of an 11th node: process start → all agree", ours: pick(func(t faultTrial) time.Duration { return t.joinAgree }).cell(),
			published: "2–3 s", measured: "2.1 s"},
		{what: "rebalance of that join, as the leader timed it (10 → 11 nodes)", ours: pick(func(t faultTrial) time.Duration { return t.rebalance }).cell(),
			published: "5–8 s (10 nodes)"},
		{what: "SIGKILL of a plain node → first OnNodeLeave" + lease, ours: pick(func(t faultTrial) time.Duration { return t.crashSeen }).cell(),
			published: "15 s", measured: "10.8 s, on one node only"},
		{what: "SIGKILL → every primary elsewhere", ours: pick(func(t faultTrial) time.Duration { return t.crashFailover }).cell()},
		{what: "SIGKILL → all agree on a settled map without it (replicas re-placed after RebalanceDelay, default 30 s)", ours: pick(func(t faultTrial) time.Duration { return t.crashRepaired }).cell(),
			measured: "12.9 s (130 of 512 keys without a primary meanwhile)"},
		{what: "SIGSTOP of a plain node → first OnNodeLeave" + lease, ours: pick(func(t faultTrial) time.Duration { return t.freezeSeen }).cell()},
		{what: "SIGSTOP → all others agree on a settled map without it (after RebalanceDelay)", ours: pick(func(t faultTrial) time.Duration { return t.freezeRepair }).cell()},
		{what: "SIGCONT after 2 × TTL + 1 s → all agree with it again", ours: pick(func(t faultTrial) time.Duration { return t.thawAgree }).cell()},
		{what: "leader SIGKILL → a survivor names a new leader", ours: pick(func(t faultTrial) time.Duration { return t.leaderCrash }).cell(),
			published: "150–300 ms (Raft election timeout)"},
		{what: "leader graceful stop (SIGTERM) → a survivor names a new leader", ours: pick(func(t faultTrial) time.Duration { return t.leaderGrace }).cell()},
	}
}

func progress(what string) { fmt.Fprintf(os.Stderr, "bench: %s\n", what) }
