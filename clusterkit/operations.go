package clusterkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Limits of the cluster-wide custom data.
const (
	// MaxCustomDataSize is the largest value SetCustomData accepts.
	MaxCustomDataSize = 64 << 10
	// MaxCustomDataKeyLen is the longest key.
	MaxCustomDataKeyLen = 256
)

// running returns the runtime, or ErrNotStarted / ErrStopped.
func (ck *ClusterKit) running() (*runtime, error) {
	rt := ck.rt()
	if rt == nil || !ck.started.Load() {
		return nil, ErrNotStarted
	}
	if rt.ctx.Err() != nil {
		return nil, ErrStopped
	}
	return rt, nil
}

func checkDataKey(key string) error {
	if key == "" || len(key) > MaxCustomDataKeyLen || strings.ContainsAny(key, "\x00") {
		return fmt.Errorf("%w: custom data key must be 1 to %d bytes without NUL, got %q", ErrInvalidKey, MaxCustomDataKeyLen, key)
	}
	return nil
}

// SetCustomData stores value under key, cluster-wide, in etcd. Values are
// for small settings: at most MaxCustomDataSize bytes.
func (ck *ClusterKit) SetCustomData(ctx context.Context, key string, value []byte) error {
	if err := checkDataKey(key); err != nil {
		return err
	}
	if len(value) > MaxCustomDataSize {
		return fmt.Errorf("%w: custom data %q is %d bytes, the limit is %d", ErrValueTooLarge, key, len(value), MaxCustomDataSize)
	}
	if _, err := ck.running(); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := ck.cli.Put(rctx, ck.keys.data(key), string(value)); err != nil {
		ck.metrics.etcdErrors.WithLabelValues("custom_data").Inc()
		return fmt.Errorf("clusterkit: set custom data %q: %w", key, err)
	}
	return nil
}

// GetCustomData returns the value stored under key; ErrNotFound if none.
func (ck *ClusterKit) GetCustomData(ctx context.Context, key string) ([]byte, error) {
	if err := checkDataKey(key); err != nil {
		return nil, err
	}
	if _, err := ck.running(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := ck.cli.Get(rctx, ck.keys.data(key))
	if err != nil {
		ck.metrics.etcdErrors.WithLabelValues("custom_data").Inc()
		return nil, fmt.Errorf("clusterkit: get custom data %q: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: custom data %q", ErrNotFound, key)
	}
	return resp.Kvs[0].Value, nil
}

// DeleteCustomData removes key; deleting a missing key is not an error.
func (ck *ClusterKit) DeleteCustomData(ctx context.Context, key string) error {
	if err := checkDataKey(key); err != nil {
		return err
	}
	if _, err := ck.running(); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := ck.cli.Delete(rctx, ck.keys.data(key)); err != nil {
		ck.metrics.etcdErrors.WithLabelValues("custom_data").Inc()
		return fmt.Errorf("clusterkit: delete custom data %q: %w", key, err)
	}
	return nil
}

// ListCustomDataKeys returns every custom-data key, sorted.
func (ck *ClusterKit) ListCustomDataKeys(ctx context.Context) ([]string, error) {
	if _, err := ck.running(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	prefix := ck.keys.dataPrefix()
	resp, err := ck.cli.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		ck.metrics.etcdErrors.WithLabelValues("custom_data").Inc()
		return nil, fmt.Errorf("clusterkit: list custom data: %w", err)
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, strings.TrimPrefix(string(kv.Key), prefix))
	}
	return keys, nil
}

// RebalancePartitions asks the leader (whichever node it is) for a manual
// rebalance and returns once the leader has started it (OnRebalanceStart
// fires on every node with trigger "manual"). The leader plans again from
// the current map; when the map is already balanced nothing moves.
func (ck *ClusterKit) RebalancePartitions(ctx context.Context) error {
	rt, err := ck.running()
	if err != nil {
		return err
	}
	var b [8]byte
	rand.Read(b[:])
	req := rebalanceRequest{ID: hex.EncodeToString(b[:]), Node: ck.opts.NodeID, At: time.Now().UTC()}
	v, _ := json.Marshal(req)
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	_, err = ck.cli.Put(rctx, ck.keys.rebalanceRequest(), string(v))
	cancel()
	if err != nil {
		ck.metrics.etcdErrors.WithLabelValues("rebalance_request").Inc()
		return fmt.Errorf("clusterkit: request rebalance: %w", err)
	}
	for {
		ch := rt.tracker.waitApplied()
		started := false
		rt.tracker.read(func(v *view) { started = v.rebalance != nil && v.rebalance.RequestID == req.ID })
		if started {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("clusterkit: rebalance %s requested, not started yet: %w", req.ID, ctx.Err())
		case <-rt.ctx.Done():
			return ErrStopped
		}
	}
}

// RemoveNode removes a live node from the cluster, as an operator would:
// every node reports it leaving with reason removed_by_admin, its lease ends
// and it does not register again by itself. ErrNotFound if id is not a
// live member.
func (ck *ClusterKit) RemoveNode(ctx context.Context, id string) error {
	if _, err := ck.running(); err != nil {
		return err
	}
	key := ck.keys.member(id)
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := ck.cli.Get(rctx, key)
	if err != nil {
		ck.metrics.etcdErrors.WithLabelValues("remove_node").Inc()
		return fmt.Errorf("clusterkit: remove node %q: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%w: node %q is not a live member", ErrNotFound, id)
	}
	kv := resp.Kvs[0]
	var rec memberRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return fmt.Errorf("clusterkit: remove node %q: unreadable member record: %w", id, err)
	}
	rec.State = memberRemoved
	b, _ := json.Marshal(rec)
	// Mark it removed (keeping its lease), then delete it and revoke its
	// lease; the guard makes a concurrent change of the record win.
	txn, err := ck.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
		Then(clientv3.OpPut(key, string(b), clientv3.WithIgnoreLease())).Commit()
	if err != nil {
		ck.metrics.etcdErrors.WithLabelValues("remove_node").Inc()
		return fmt.Errorf("clusterkit: remove node %q: %w", id, err)
	}
	if !txn.Succeeded {
		return fmt.Errorf("clusterkit: remove node %q: its record changed meanwhile; try again", id)
	}
	// Delete only the record just marked, so that the "removed" state is
	// what every watcher sees last.
	marked := txn.Header.Revision
	del, err := ck.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", marked)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil || !del.Succeeded {
		ck.metrics.etcdErrors.WithLabelValues("remove_node").Inc()
		return fmt.Errorf("clusterkit: remove node %q: marked removed, but the delete failed (try again): %v", id, err)
	}
	if kv.Lease != 0 {
		// Its ready and leader keys go with its lease.
		if _, err := ck.cli.Revoke(rctx, clientv3.LeaseID(kv.Lease)); err != nil {
			ck.metrics.etcdErrors.WithLabelValues("remove_node").Inc()
		}
	}
	ck.log.Info("node removed by admin", zapNode(id))
	return nil
}
