package clusterkit

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/placement"
)

// ensureConfig writes the cluster config if it does not exist (create-only
// Txn) and checks that it matches this node's options.
func (r *run) ensureConfig(ctx context.Context) (clusterConfig, error) {
	o := &r.ck.opts
	want := clusterConfig{FormatVersion: formatVersion, PartitionCount: o.PartitionCount,
		ReplicationFactor: o.ReplicationFactor, Hash: placement.HashName}
	b, err := json.Marshal(want)
	if err != nil {
		return want, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := r.ck.keys.config()
	resp, err := r.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		r.ck.metrics.etcdErrors.WithLabelValues("config").Inc()
		return want, fmt.Errorf("clusterkit: write cluster config: %w", err)
	}
	if resp.Succeeded {
		return want, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	var got clusterConfig
	if len(kvs) == 0 || json.Unmarshal(kvs[0].Value, &got) != nil {
		return want, fmt.Errorf("%w: cluster %q has an unreadable config", ErrConfigMismatch, o.ClusterName)
	}
	if got.FormatVersion > formatVersion {
		return want, fmt.Errorf("%w: cluster %q uses format version %d, this node knows %d", ErrConfigMismatch, o.ClusterName, got.FormatVersion, formatVersion)
	}
	if got.PartitionCount != want.PartitionCount || got.ReplicationFactor != want.ReplicationFactor || got.Hash != want.Hash {
		return want, fmt.Errorf("%w: cluster %q has PartitionCount %d, ReplicationFactor %d, hash %s; this node has %d, %d, %s",
			ErrConfigMismatch, o.ClusterName, got.PartitionCount, got.ReplicationFactor, got.Hash,
			want.PartitionCount, want.ReplicationFactor, want.Hash)
	}
	return got, nil
}
