package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Read-only etcd mode: status, members, partitions, locate and watch read
// the cluster's state straight from etcd through a clusterkit.Router (the
// library's own decoding), without any node's HTTP API. The flags are
// etcdctl's names.
type etcdFlags struct {
	endpoints string // comma-separated client URLs; "" is node mode
	cluster   string
	cert, key string
	cacert    string
}

// Command annotations that say which commands take which mode's flags.
const (
	// annEtcd marks a read-only command that works with --etcd.
	annEtcd = "etcd"
	// annCluster marks a command that takes --cluster without --etcd.
	annCluster = "cluster"
)

// readOnly marks cmd as available in etcd mode and returns it.
func readOnly(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annEtcd] = "yes"
	return cmd
}

// checkMode refuses flags of the mode the command line did not choose,
// and commands that --etcd mode cannot run (usage errors).
func checkMode(cmd *cobra.Command, g *globals) error {
	if name := cmd.Name(); name == "help" || name == "completion" || (cmd.HasParent() && cmd.Parent().Name() == "completion") {
		return nil // cobra's own commands
	}
	f := cmd.Flags()
	if g.etcd.endpoints == "" {
		for _, name := range []string{"cert", "key", "cacert"} {
			if f.Changed(name) {
				return usageError("--%s is for read-only etcd mode: pass --etcd with the etcd client URLs too", name)
			}
		}
		if f.Changed("cluster") && cmd.Annotations[annCluster] == "" {
			return usageError("--cluster is for read-only etcd mode (--etcd); a node's HTTP API serves its own cluster")
		}
		return nil
	}
	if cmd.Annotations[annEtcd] == "" {
		return usageError("'%s' is not available with --etcd, which only reads (status, members, partitions, locate, watch): ask a node's HTTP API with --node host:port instead", cmd.CommandPath())
	}
	for _, name := range []string{"node", "token", "ca-file", "insecure-skip-tls-verify", "interval"} {
		if f.Changed(name) {
			return usageError("--%s is for node mode (--node); --etcd reads etcd with --cert, --key and --cacert", name)
		}
	}
	return nil
}

// openRouter checks the etcd flags and follows the cluster with a
// Router, which the caller closes. Its errors say what to check.
func openRouter(ctx context.Context, g *globals) (*clusterkit.Router, error) {
	if err := checkCommon(g); err != nil {
		return nil, err
	}
	var eps []string
	for ep := range strings.SplitSeq(g.etcd.endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		return nil, usageError("invalid --etcd %q: give the etcd client URLs, comma-separated", g.etcd.endpoints)
	}
	opts := clusterkit.RouterOptions{ClusterName: g.etcd.cluster, Etcd: clusterkit.EtcdConfig{
		Endpoints: eps, CertFile: g.etcd.cert, KeyFile: g.etcd.key, CAFile: g.etcd.cacert}}
	rctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	r, err := clusterkit.NewRouter(rctx, opts)
	switch {
	case err == nil:
		return r, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, clusterkit.ErrInvalidOptions):
		return nil, usageError("invalid etcd-mode flags (--etcd, --cluster, --cert, --key, --cacert): %v", err)
	case errors.Is(err, clusterkit.ErrNotFound):
		return nil, failed(fmt.Errorf("%v; check --cluster (the nodes' ClusterName, default %q)", err, clusterkit.DefaultClusterName))
	}
	hint := "check that --etcd lists the client URLs of the cluster's etcd (clusterkit cert issue prints them)"
	if g.etcd.cert == "" {
		hint += "; a secure cluster's embedded etcd wants a client certificate: get one with 'clusterkit cert issue --name NAME --out DIR' and pass --cert, --key and --cacert"
	}
	return nil, failed(fmt.Errorf("cannot read cluster %q from etcd at %s: %v; %s", g.etcd.cluster, strings.Join(eps, ","), err, hint))
}

// follow prints the changes the router applies until ctx ends (then it
// returns nil) or the router stops following etcd (then it says why).
func (w *watcher) follow(ctx context.Context, r *clusterkit.Router, source string) error {
	updated := r.Updated() // before the read, so no change falls between
	prev := viewOf(r)
	w.emit(watchEvent{Event: evWatching, Version: prev.AssignmentVersion, Message: fmt.Sprintf(
		"watching cluster %s in %s: %d members, leader %s, map v%d", prev.Name, source, len(prev.Members), orDash(prev.Leader), prev.AssignmentVersion)})
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.Done():
			return fmt.Errorf("stopped following etcd: %v; run watch again", r.Err())
		case <-updated:
		}
		updated = r.Updated()
		cur := viewOf(r)
		for _, e := range diff(prev, cur) {
			w.emit(e)
		}
		prev = cur
	}
}

// etcdSource is where etcd mode says it read from.
func etcdSource(g *globals) string { return "etcd " + g.etcd.endpoints }

// viewOf is the router's cluster in the shape of GET /cluster. What only
// a node knows (its own ID, its etcd members' roles, the rebalance's
// progress, health) is left out.
func viewOf(r *clusterkit.Router) *clusterView {
	c := r.GetCluster()
	v := &clusterView{Name: c.Name, Leader: c.Leader, PartitionCount: c.PartitionCount, ReplicationFactor: c.ReplicationFactor,
		AssignmentVersion: c.AssignmentVersion, Settled: c.Settled, Maintenance: c.Maintenance,
		Members: make([]member, len(c.Nodes)), Partitions: make([]partition, len(c.Partitions))}
	for i := range c.Nodes {
		v.Members[i] = memberOf(&c.Nodes[i])
	}
	for i := range c.Partitions {
		v.Partitions[i] = partitionOf(&c.Partitions[i])
	}
	for _, op := range r.NodeOperations() {
		v.Operations = append(v.Operations, nodeOperation{Node: op.Node, Operation: string(op.Operation), By: op.By,
			Since: op.Since, Applied: op.Applied, Partitions: op.Partitions, Done: op.Done})
	}
	return v
}

// locateIn is GET /partitions?key=K answered by the router.
func locateIn(r *clusterkit.Router, key string) (*partitionView, error) {
	p, err := r.GetPartition(key)
	if err != nil {
		return nil, fmt.Errorf("the cluster has no partition map yet (%v); retry once a node has started", err)
	}
	nodes := r.GetNodes(p)
	out := &partitionView{partition: partitionOf(p), Key: &key, AssignmentVersion: r.Version(), Nodes: make([]member, len(nodes))}
	for i := range nodes {
		out.Nodes[i] = memberOf(&nodes[i])
	}
	return out, nil
}

func memberOf(n *clusterkit.Node) member {
	services := n.Services
	if services == nil {
		services = map[string]string{}
	}
	return member{ID: n.ID, Address: n.Addr, Zone: n.Zone, Weight: n.Weight, Services: services,
		State: n.Status, Incarnation: n.Incarnation, Started: n.StartedAt}
}

func partitionOf(p *clusterkit.Partition) partition {
	return partition{ID: p.ID, Index: p.Index, Primary: p.PrimaryNode, Replicas: p.ReplicaNodes, Incoming: p.IncomingNodes, Epoch: p.Epoch}
}
