package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// memberJSON is one entry of members's -o json.
type memberJSON struct {
	member
	Leader bool `json:"leader"`
	holding
}

func newMembersCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "members",
		Short: "List the members: state, zone, weight, address, incarnation and what each holds",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, v, err := fetchCluster(cmd, g)
			if err != nil {
				return err
			}
			held := v.holdings()
			out := make([]memberJSON, len(v.Members))
			for i, m := range v.Members {
				out[i] = memberJSON{member: m, Leader: m.ID == v.Leader, holding: held[m.ID]}
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			t := newTable(cmd.OutOrStdout(), "NODE", "STATE", "LEADER", "ZONE", "WEIGHT", "ADDRESS", "INCARNATION", "UP", "PRIMARIES", "REPLICAS", "INCOMING")
			now := time.Now()
			for _, m := range out {
				leader := ""
				if m.Leader {
					leader = "*"
				}
				t.row(m.ID, m.State, leader, orDash(m.Zone), strconv.FormatFloat(m.Weight, 'g', -1, 64), orDash(m.Address),
					fmt.Sprintf("%x", uint64(m.Incarnation)), ago(m.Started, now),
					strconv.Itoa(m.Primaries), strconv.Itoa(m.Replicas), strconv.Itoa(m.Incoming))
			}
			return t.flush()
		},
	}
}
