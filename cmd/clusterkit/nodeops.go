package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// nodeOperation is one entry of GET /operations (and /cluster's
// "operations").
type nodeOperation struct {
	Node       string    `json:"node"`
	Operation  string    `json:"operation"`
	By         string    `json:"by"`
	Since      time.Time `json:"since"`
	Applied    bool      `json:"applied"`
	Partitions int       `json:"partitions"`
	Done       bool      `json:"done"`
}

// operationsView is the body of GET /operations.
type operationsView struct {
	Node       string          `json:"node"`
	Operations []nodeOperation `json:"operations"`
}

// newNodeOpCommand returns cordon, uncordon or drain (verb): POST
// /nodes/NODE/verb.
func newNodeOpCommand(g *globals, verb, short, long string) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   verb + " NODE",
		Short: short,
		Long:  long,
		Args:  exactArgs("NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g)
			if err != nil {
				return err
			}
			id := args[0]
			out, err := c.admin(cmd.Context(), "/nodes/"+url.PathEscape(id)+"/"+verb)
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound && !ae.UnknownPath {
				return failed(fmt.Errorf("%q is not a live member; 'clusterkit members' lists them", id))
			}
			if err != nil {
				return failed(err)
			}
			op, err := c.operation(cmd.Context(), id)
			if err != nil {
				return failed(err)
			}
			if wait {
				if op, err = c.waitDrained(cmd, g, id); err != nil {
					return failed(err)
				}
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"action": out["action"], "asked": out["node"], "operation": op})
			}
			w := cmd.OutOrStdout()
			switch {
			case verb == "uncordon":
				fmt.Fprintf(w, "%s is schedulable again (nothing moves by itself; 'clusterkit rebalance' evens the load)\n", id)
			case verb == "cordon":
				fmt.Fprintf(w, "cordoned %s: it gets no new partitions and keeps its %d\n", id, op.Partitions)
			case op.Done:
				fmt.Fprintf(w, "drained %s: it holds nothing; stop it when you like, or 'clusterkit uncordon %s'\n", id, id)
			default:
				fmt.Fprintf(w, "draining %s: %d partitions still on it; follow with 'clusterkit status', cancel with 'clusterkit uncordon %s'\n", id, op.Partitions, id)
			}
			return nil
		},
	}
	if verb == "drain" {
		cmd.Flags().BoolVar(&wait, "wait", false, "wait until the node holds nothing (bounded by --timeout), printing progress")
	}
	return cmd
}

// operation returns node id's operator state ("" operation: none).
func (c *client) operation(ctx context.Context, id string) (nodeOperation, error) {
	var v operationsView
	if err := c.get(ctx, "/operations", &v); err != nil {
		return nodeOperation{}, err
	}
	for _, op := range v.Operations {
		if op.Node == id {
			return op, nil
		}
	}
	return nodeOperation{Node: id}, nil
}

// waitDrained polls until node id's drain is done, printing progress to
// stderr (table output only), for at most g.timeout.
func (c *client) waitDrained(cmd *cobra.Command, g *globals, id string) (nodeOperation, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	last := -1
	for {
		op, err := c.operation(ctx, id)
		if err != nil {
			return op, err
		}
		if op.Operation != "draining" {
			return op, fmt.Errorf("%s is no longer draining (operation %q): someone cancelled the drain", id, op.Operation)
		}
		if op.Done {
			return op, nil
		}
		if op.Partitions != last && g.output != "json" {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d partitions left\n", id, op.Partitions)
			last = op.Partitions
		}
		select {
		case <-ctx.Done():
			return op, fmt.Errorf("%s still holds %d partitions after %v; the drain goes on (see 'clusterkit status'): %w", id, op.Partitions, g.timeout, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func newMaintenanceCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "maintenance on|off",
		Short: "Turn maintenance mode on or off (needs the token)",
		Long: `In maintenance mode the leader only fails primaries over to surviving
replicas: it places no new replicas and keeps every away node's slots, so
nodes can be restarted without data moving. Turned on here, it lasts until
turned off.`,
		Args: exactArgs("on|off"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "on" && args[0] != "off" {
				return usageError("maintenance takes on or off, got %q", args[0])
			}
			c, err := newClient(g)
			if err != nil {
				return err
			}
			out, err := c.admin(cmd.Context(), "/maintenance/"+args[0])
			if err != nil {
				return failed(err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "maintenance mode %s (applied by the leader, asked %s)\n", args[0], out["node"])
			return nil
		},
	}
}

// nodeOpCommands returns cordon, uncordon, drain and maintenance.
func nodeOpCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newNodeOpCommand(g, "cordon", "Stop placing new partitions on a node (needs the token)",
			`Cordon a node: the leader plans no new partition for it and moves nothing
off it. A drain in progress stops where it is. 'clusterkit uncordon' lifts it.`),
		newNodeOpCommand(g, "uncordon", "Lift a cordon or cancel a drain (needs the token)",
			`Lift a node's cordon, or cancel its drain: finished moves stay, moves
still on their way are called off. Nothing moves back by itself.`),
		newNodeOpCommand(g, "drain", "Move every partition off a node before maintenance (needs the token)",
			`Drain a node: its partitions move to the others through the normal
handoff (the new holders are ready before it stops serving them); then it
holds nothing and stays a member until stopped, and stopping it moves
nothing. Returns once the moves have started; --wait waits until done.
'clusterkit uncordon' cancels it.`),
		newMaintenanceCommand(g),
		newCancelHandoffCommand(g),
	}
}

func newCancelHandoffCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel-handoff PARTITION",
		Short: "Give up the moves of a partition under way (needs the token)",
		Long: `Give up the handoffs of a partition (partition-N or N) that are under way,
typically one reported stuck (failing longer than HandoffTimeout, see
'clusterkit status'): it keeps the nodes that serve it now.`,
		Args: exactArgs("PARTITION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g)
			if err != nil {
				return err
			}
			out, err := c.admin(cmd.Context(), "/partitions/"+url.PathEscape(args[0])+"/cancel-handoff")
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound && !ae.UnknownPath {
				return failed(fmt.Errorf("%s; 'clusterkit partitions' shows the incoming nodes", ae.Message))
			}
			if err != nil {
				return failed(err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cancelled the handoffs of %s; it keeps its serving nodes\n", args[0])
			return nil
		},
	}
}
