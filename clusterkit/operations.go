package clusterkit

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// running returns the run of a started node, or ErrNotStarted /
// ErrStopped.
func (ck *ClusterKit) running() (*run, error) {
	r := ck.active.Load()
	if r == nil || !ck.started.Load() {
		return nil, ErrNotStarted
	}
	if r.ctx.Err() != nil {
		return nil, ErrStopped
	}
	return r, nil
}

// RebalancePartitions asks the leader (whichever node it is) for a manual
// rebalance and returns once the leader has started it (OnRebalanceStart
// fires on every node with trigger "manual"). The leader plans again from
// the current map; when the map is already balanced nothing moves.
func (ck *ClusterKit) RebalancePartitions(ctx context.Context) error {
	r, err := ck.running()
	if err != nil {
		return err
	}
	req, err := r.putRequest(ctx, ck.keys.rebalanceRequest(), "", "rebalance_request")
	if err != nil {
		return fmt.Errorf("clusterkit: request rebalance: %w", err)
	}
	err = r.follower.waitFor(ctx, func(v *view) bool { return v.rebalance != nil && v.rebalance.RequestID == req.ID })
	if err != nil && !errors.Is(err, ErrStopped) {
		return fmt.Errorf("clusterkit: rebalance %s requested, not started yet: %w", req.ID, err)
	}
	return err
}

// EndRebalanceDelay ends the wait for the away nodes (nodes whose lease
// expired within Options.RebalanceDelay): the leader gives their slots up
// and places new replicas now. It returns once the leader applied the
// request.
func (ck *ClusterKit) EndRebalanceDelay(ctx context.Context) error {
	return ck.control(ctx, actionEndDelay)
}

// SetMaintenance turns maintenance mode on or off and returns once the
// leader applied it. In maintenance mode the leader only fails primaries
// over to surviving replicas: it places no new replicas, keeps every away
// node's slots and hands no partition out without a source. Turned on by
// an operator, it lasts until turned off; begun by the leader (many nodes
// left at once, see Options.Maintenance), it ends when the nodes are back
// or when turned off.
func (ck *ClusterKit) SetMaintenance(ctx context.Context, on bool) error {
	if on {
		return ck.control(ctx, actionMaintenanceOn)
	}
	return ck.control(ctx, actionMaintenanceOff)
}

// control writes an operator request for the leader and waits until the
// map says the leader applied it.
func (ck *ClusterKit) control(ctx context.Context, action controlAction) error {
	r, err := ck.running()
	if err != nil {
		return err
	}
	// Guarded by every control request: a late "maintenance on" must not
	// follow an "off" sent after it.
	req, err := r.putRequest(ctx, ck.keys.controlRequest(action), ck.keys.controlRequestPrefix(), "control_request")
	if err != nil {
		return fmt.Errorf("clusterkit: request %s: %w", action, err)
	}
	err = r.follower.waitFor(ctx, func(v *view) bool { return v.assign != nil && v.assign.Served[action] == req.ID })
	if err != nil && !errors.Is(err, ErrStopped) {
		return fmt.Errorf("clusterkit: %s %s requested, not applied yet: %w", action, req.ID, err)
	}
	return err
}

// putRequest writes a new request for the leader (a random ID, this node,
// the time) at key, only if no key under guardPrefix (key alone when "")
// was written since it looked (writeIfUnchanged); op names it in the
// error metric.
func (r *run) putRequest(ctx context.Context, key, guardPrefix, op string) (controlRequest, error) {
	var b [8]byte
	rand.Read(b[:])
	req := controlRequest{ID: hex.EncodeToString(b[:]), Node: r.ck.opts.NodeID, At: time.Now().UTC()}
	v, _ := json.Marshal(req)
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	guard := cmp.Or(guardPrefix, key)
	if _, err := r.writeIfUnchanged(rctx, guard, guardPrefix != "", clientv3.OpPut(key, string(v))); err != nil {
		r.ck.metrics.etcdErrors.WithLabelValues(op).Inc()
		return req, err
	}
	return req, nil
}

// writeIfUnchanged applies write only if no key under guard (the key, or
// every key with that prefix) was written after this call read it, and
// returns the write's revision. An operator's request whose write timed
// out may still reach etcd later (etcd under load); written this way it
// then changes nothing, rather than undoing a newer request. A guard that
// keeps changing between read and write is tried three times.
func (r *run) writeIfUnchanged(ctx context.Context, guard string, prefix bool, write clientv3.Op) (int64, error) {
	var readOpts []clientv3.OpOption
	if prefix {
		readOpts = append(readOpts, clientv3.WithPrefix())
	}
	for range 3 {
		resp, err := r.cli.Get(ctx, guard, append(readOpts, clientv3.WithCountOnly())...)
		if err != nil {
			return 0, err
		}
		unchanged := clientv3.Compare(clientv3.ModRevision(guard), "<", resp.Header.Revision+1)
		if prefix {
			unchanged = unchanged.WithPrefix()
		}
		txn, err := r.cli.Txn(ctx).If(unchanged).Then(write).Commit()
		if err != nil {
			return 0, err
		}
		if txn.Succeeded {
			return txn.Header.Revision, nil
		}
	}
	return 0, errors.New("other requests keep arriving; try again")
}

// RemoveNode removes a live node from the cluster, as an operator would:
// every node reports it leaving with reason removed_by_admin, its lease ends
// and it does not register again by itself. ErrNotFound if id is not a
// live member.
func (ck *ClusterKit) RemoveNode(ctx context.Context, id string) error {
	r, err := ck.running()
	if err != nil {
		return err
	}
	key := ck.keys.member(id)
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := r.cli.Get(rctx, key)
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
	txn, err := r.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
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
	del, err := r.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", marked)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil || !del.Succeeded {
		ck.metrics.etcdErrors.WithLabelValues("remove_node").Inc()
		return fmt.Errorf("clusterkit: remove node %q: marked removed, but the delete failed (try again): %v", id, err)
	}
	// An operator's order (cordon, drain) ends with the node.
	if _, err := r.cli.Delete(rctx, ck.keys.operator(id)); err != nil {
		ck.metrics.etcdErrors.WithLabelValues("remove_node").Inc()
	}
	if kv.Lease != 0 {
		// Its ready and leader keys go with its lease.
		if _, err := r.cli.Revoke(rctx, clientv3.LeaseID(kv.Lease)); err != nil {
			ck.metrics.etcdErrors.WithLabelValues("remove_node").Inc()
		}
	}
	ck.log.Info("node removed by admin", zapNode(id))
	return nil
}
