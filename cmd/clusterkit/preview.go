package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// planPreview is the body of GET /rebalance/preview.
type planPreview struct {
	AssignmentVersion int64    `json:"assignment_version"`
	Nodes             []string `json:"nodes"`
	Moves             int      `json:"moves"`
	PrimaryChanges    int      `json:"primary_changes"`
	PerNode           []struct {
		Node   string `json:"node"`
		Before int    `json:"before"`
		After  int    `json:"after"`
		Gains  []int  `json:"gains"`
		Losses []int  `json:"losses"`
	} `json:"per_node"`
	Partitions []struct {
		Partition int      `json:"partition"`
		From      []string `json:"from"`
		To        []string `json:"to"`
	} `json:"partitions"`
}

// previewFlags are rebalance's dry-run flags.
type previewFlags struct {
	dryRun      bool
	add, remove []string
}

func (f *previewFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "show what would move, write nothing (no token needed)")
	fl.StringArrayVar(&f.add, "add", nil, "with --dry-run: assume node NODE[:zone[:weight]] joins (repeatable)")
	fl.StringArrayVar(&f.remove, "remove", nil, "with --dry-run: assume member NODE leaves (repeatable)")
}

// runPreview asks the node for a dry run and prints it.
func (f *previewFlags) run(cmd *cobra.Command, g *globals) error {
	c, err := newClient(g)
	if err != nil {
		return err
	}
	q := url.Values{"add": f.add, "remove": f.remove}
	var pv planPreview
	if err := c.get(cmd.Context(), "/rebalance/preview?"+q.Encode(), &pv); err != nil {
		return failed(err)
	}
	if g.output == "json" {
		return printJSON(cmd.OutOrStdout(), pv)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "dry run from map v%d for %d nodes: %d moves, %d primary changes (nothing written)\n",
		pv.AssignmentVersion, len(pv.Nodes), pv.Moves, pv.PrimaryChanges)
	t := newTable(w, "NODE", "BEFORE", "AFTER", "GAINS", "LOSSES")
	for _, d := range pv.PerNode {
		t.row(d.Node, strconv.Itoa(d.Before), strconv.Itoa(d.After), ints(d.Gains), ints(d.Losses))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, p := range pv.Partitions {
		fmt.Fprintf(w, "partition-%d: %s → %s\n", p.Partition, joined(p.From), joined(p.To))
	}
	return nil
}

// ints joins partition indexes, "-" for none.
func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return orDash(strings.Join(s, ","))
}
