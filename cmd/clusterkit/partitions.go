package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// partitionJSON is one entry of partitions's -o json; Role is set when the
// list is filtered by a node.
type partitionJSON struct {
	partition
	Role string `json:"role,omitempty"`
}

func newPartitionsCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "partitions [NODE]",
		Short: "List the partitions and their nodes; with NODE, only those NODE holds or receives",
		Long: `List every partition: its primary, replicas, incoming nodes (receiving
its data) and epoch. With a node ID, list only the partitions that node
serves or receives, with its role in each.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("partitions takes at most one argument (a node ID), got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			_, v, err := fetchCluster(cmd, g)
			if err != nil {
				return err
			}
			var node string
			if len(args) == 1 {
				node = args[0]
			}
			out := []partitionJSON{}
			for _, p := range v.Partitions {
				role := p.role(node)
				if node == "" || role != "" {
					out = append(out, partitionJSON{partition: p, Role: role})
				}
			}
			if node != "" && len(out) == 0 && !v.hasMember(node) {
				return failed(fmt.Errorf("no member %q and no partition names it; the members are %s (see clusterkit members)", node, v.memberIDs()))
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			header := []string{"PARTITION", "PRIMARY", "REPLICAS", "INCOMING", "EPOCH"}
			if node != "" {
				header = append([]string{"PARTITION", "ROLE"}, header[1:]...)
			}
			t := newTable(cmd.OutOrStdout(), header...)
			for _, p := range out {
				cells := []string{p.ID, orDash(p.Primary), joined(p.Replicas), joined(p.Incoming), strconv.FormatUint(p.Epoch, 10)}
				if node != "" {
					cells = append([]string{p.ID, p.Role}, cells[1:]...)
				}
				t.row(cells...)
			}
			return t.flush()
		},
	}
}

func (v *clusterView) hasMember(id string) bool {
	for _, m := range v.Members {
		if m.ID == id {
			return true
		}
	}
	return false
}

func (v *clusterView) memberIDs() string {
	ids := make([]string, len(v.Members))
	for i, m := range v.Members {
		ids[i] = m.ID
	}
	return strings.Join(ids, ", ")
}

func newLocateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "locate KEY",
		Short: "Show the partition KEY maps to and the nodes that serve it",
		Args:  exactArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := locate(cmd, g, args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), p)
			}
			addr := map[string]string{}
			for _, n := range p.Nodes {
				addr[n.ID] = n.Address
			}
			withAddr := func(id string) string {
				if a := addr[id]; a != "" {
					return id + " (" + a + ")"
				}
				return id
			}
			replicas := make([]string, len(p.Replicas))
			for i, id := range p.Replicas {
				replicas[i] = withAddr(id)
			}
			t := newTable(cmd.OutOrStdout())
			t.row("key:", args[0])
			t.row("partition:", p.ID)
			t.row("primary:", orDash(withAddr(p.Primary)))
			t.row("replicas:", orDash(strings.Join(replicas, ", ")))
			t.row("incoming:", joined(p.Incoming))
			t.row("epoch:", strconv.FormatUint(p.Epoch, 10))
			t.row("map version:", strconv.FormatInt(p.AssignmentVersion, 10))
			return t.flush()
		},
	}
}

// locate asks the node, or in etcd mode the router, where key lives.
func locate(cmd *cobra.Command, g *globals, key string) (*partitionView, error) {
	if g.etcd.endpoints != "" {
		r, err := openRouter(cmd.Context(), g)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		p, err := locateIn(r, key)
		return p, failed(err)
	}
	c, err := newClient(g)
	if err != nil {
		return nil, err
	}
	var p partitionView
	if err := c.get(cmd.Context(), "/partitions?key="+url.QueryEscape(key), &p); err != nil {
		return nil, failed(err)
	}
	return &p, nil
}
