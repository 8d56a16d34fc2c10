package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// statusJSON is status's -o json.
type statusJSON struct {
	Cluster           string          `json:"cluster"`
	Node              string          `json:"node"`
	Leader            string          `json:"leader"`
	Members           map[string]int  `json:"members"` // by state
	PartitionCount    int             `json:"partition_count"`
	ReplicationFactor int             `json:"replication_factor"`
	AssignmentVersion int64           `json:"assignment_version"`
	Settled           bool            `json:"settled"`
	Incoming          int             `json:"incoming"`
	Maintenance       string          `json:"maintenance,omitempty"`
	Operations        []nodeOperation `json:"operations,omitempty"`
	// Health is null in etcd mode, which names its source in Etcd.
	Health *healthView `json:"health"`
	Etcd   string      `json:"etcd,omitempty"`
}

func newStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's leader, members, map and health in brief",
		Long: `Show the cluster's leader, members by state, partition map and operator
orders, and the asked node's health checks, etcd connection and handoffs.
With --etcd, health and the asked node's rows are not shown ("health":
null with -o json): only a node knows them.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, v, err := fetchCluster(cmd, g)
			if err != nil {
				return err
			}
			s := statusJSON{Cluster: v.Name, Node: v.Node, Leader: v.Leader, Members: map[string]int{},
				PartitionCount: v.PartitionCount, ReplicationFactor: v.ReplicationFactor,
				AssignmentVersion: v.AssignmentVersion, Settled: v.Settled,
				Maintenance: v.Maintenance, Operations: v.Operations}
			if c == nil {
				s.Etcd = g.etcd.endpoints
			} else if s.Health, err = c.health(cmd.Context()); err != nil {
				return failed(err)
			}
			for _, m := range v.Members {
				s.Members[m.State]++
			}
			for _, p := range v.Partitions {
				s.Incoming += len(p.Incoming)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), s)
			}
			return printStatus(cmd, &s)
		},
	}
}

func printStatus(cmd *cobra.Command, s *statusJSON) error {
	t := newTable(cmd.OutOrStdout())
	var states []string
	for _, st := range []string{"active", "unhealthy", "offline"} {
		states = append(states, fmt.Sprintf("%d %s", s.Members[st], st))
	}
	mapState := "settled"
	if !s.Settled {
		mapState = fmt.Sprintf("rebalancing (%d incoming)", s.Incoming)
	}
	t.row("cluster:", s.Cluster)
	if s.Health == nil {
		t.row("read from:", "etcd "+s.Etcd)
	} else {
		t.row("asked node:", s.Node)
	}
	t.row("leader:", orDash(s.Leader))
	t.row("members:", strings.Join(states, ", "))
	t.row("partitions:", fmt.Sprintf("%d × RF %d, map v%d, %s", s.PartitionCount, s.ReplicationFactor, s.AssignmentVersion, mapState))
	if s.Maintenance != "" {
		t.row("maintenance:", s.Maintenance)
	}
	for _, op := range s.Operations {
		state := op.Operation
		switch {
		case op.Operation == "draining" && op.Done:
			state = "drained (holds nothing)"
		case op.Operation == "draining":
			state = fmt.Sprintf("draining, %d partitions left", op.Partitions)
		}
		t.row(op.Node+":", state)
	}
	if s.Health == nil {
		t.row("health:", "not read from etcd: ask a node (--node) for health and handoffs")
		return t.flush()
	}
	t.row("health:", s.Health.Status)
	for _, r := range s.Health.Reasons {
		t.row("", "- "+r)
	}
	etcd := "connected"
	if !s.Health.EtcdConnected {
		etcd = "NOT connected"
	}
	t.row(s.Node+" etcd:", etcd)
	t.row(s.Node+" handoffs:", fmt.Sprintf("%d pending, %d failing", s.Health.PendingHandoffs, s.Health.FailedHandoffs))
	return t.flush()
}
