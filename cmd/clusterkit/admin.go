package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

func newRebalanceCommand(g *globals) *cobra.Command {
	var pf previewFlags
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Ask the leader to plan the partition map again (needs the token)",
		Long: `Ask the leader to plan the partition map again from the current one and
return once it has started; when the map is already balanced nothing
moves. Follow the moves with 'clusterkit watch'. With --dry-run it shows
what would move (per node and per partition) and writes nothing; --add and
--remove preview a membership change.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pf.dryRun {
				return pf.run(cmd, g)
			}
			if len(pf.add)+len(pf.remove) > 0 {
				return usageError("--add and --remove need --dry-run")
			}
			c, err := newClient(g)
			if err != nil {
				return err
			}
			out, err := c.admin(cmd.Context(), "/rebalance")
			if err != nil {
				return failed(err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rebalance %s (asked %s); follow it with 'clusterkit watch'\n", out["status"], out["node"])
			return nil
		},
	}
	pf.register(cmd)
	return cmd
}

func newRemoveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a live node from the cluster (needs the token)",
		Long: `Remove a live node, as an operator would: every node reports it leaving
with reason removed_by_admin, its partitions move to the others, and it
does not register again by itself.`,
		Args: exactArgs("NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g)
			if err != nil {
				return err
			}
			out, err := c.admin(cmd.Context(), "/nodes/"+url.PathEscape(args[0])+"/remove")
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound && !ae.UnknownPath {
				return failed(fmt.Errorf("%q is not a live member; 'clusterkit members' lists them", args[0]))
			}
			if err != nil {
				return failed(err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", out["node"])
			return nil
		},
	}
}
