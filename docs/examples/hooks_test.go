package examples_test

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// registerHooks registers one handler per hook, before Start (so the node
// also sees its own join). Every node receives every event: filter on IDs.
func registerHooks(ck *clusterkit.ClusterKit, log *zap.Logger, copyPartition func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error) {
	me := ck.GetMyNodeID()
	ck.OnPartitionChange(func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
		if e.CopyToNode.ID != me || e.Promoted {
			return nil
		}
		// Retried with backoff until it returns nil; ctx ends when the change
		// is withdrawn or the node stops. Make it idempotent.
		return copyPartition(ctx, e)
	})
	ck.OnNodeJoin(func(e *clusterkit.NodeJoinEvent) { log.Info("joined", zap.String("node", e.Node.ID)) })
	ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) {
		log.Info("rejoined", zap.String("node", e.Node.ID), zap.Bool("data_kept", e.DataKept))
	})
	ck.OnNodeLeave(func(e *clusterkit.NodeLeaveEvent) {
		log.Info("left", zap.String("node", e.Node.ID), zap.String("reason", string(e.Reason)))
	})
	ck.OnRebalanceStart(func(e *clusterkit.RebalanceEvent) {
		log.Info("rebalance", zap.Int64("id", e.ID), zap.Int("moves", e.PartitionsToMove))
	})
	ck.OnRebalanceComplete(func(e *clusterkit.RebalanceEvent, d time.Duration) {
		log.Info("rebalance done", zap.Int64("id", e.ID), zap.Duration("took", d))
	})
	ck.OnClusterHealthChange(func(e *clusterkit.ClusterHealthEvent) {
		log.Warn("health", zap.String("status", string(e.Status)), zap.Strings("reasons", e.Reasons))
	})
}

// Hooks are registered between New and Start.
func Example_hooks() {
	ck, err := clusterkit.New(clusterkit.Options{NodeID: "node-1", HTTPAddr: "127.0.0.1:7100"})
	if err != nil {
		return
	}
	registerHooks(ck, zap.NewExample(), func(ctx context.Context, e *clusterkit.PartitionChangeEvent) error {
		return nil // copy e.PartitionIndex from e.CopyFromNodes
	})
	// ck.Start(ctx) … ck.Stop(ctx)
}
