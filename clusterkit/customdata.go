package clusterkit

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Limits of the cluster-wide custom data.
const (
	// MaxCustomDataSize is the largest value SetCustomData accepts.
	MaxCustomDataSize = 64 << 10
	// MaxCustomDataKeyLen is the longest key.
	MaxCustomDataKeyLen = 256
)

// Custom data lives under its own prefix (/clusterkit-data/<cluster>/),
// outside the prefix every node watches: writing it wakes no node and
// changes no snapshot.

func checkDataKey(key string) error {
	if key == "" || len(key) > MaxCustomDataKeyLen || strings.ContainsAny(key, "\x00") {
		return fmt.Errorf("%w: custom data key must be 1 to %d bytes without NUL, got %q", ErrInvalidKey, MaxCustomDataKeyLen, key)
	}
	return nil
}

// SetCustomData stores value under key, cluster-wide, in etcd. Values are
// for small settings: at most MaxCustomDataSize bytes. The last write to
// reach etcd wins; as with any etcd write, a call that failed with a
// timeout may still reach etcd later, after a newer one.
func (ck *ClusterKit) SetCustomData(ctx context.Context, key string, value []byte) error {
	if err := checkDataKey(key); err != nil {
		return err
	}
	if len(value) > MaxCustomDataSize {
		return fmt.Errorf("%w: custom data %q is %d bytes, the limit is %d", ErrValueTooLarge, key, len(value), MaxCustomDataSize)
	}
	r, err := ck.running()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := r.cli.Put(rctx, ck.keys.data(key), string(value)); err != nil {
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
	r, err := ck.running()
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := r.cli.Get(rctx, ck.keys.data(key))
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
	r, err := ck.running()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := r.cli.Delete(rctx, ck.keys.data(key)); err != nil {
		ck.metrics.etcdErrors.WithLabelValues("custom_data").Inc()
		return fmt.Errorf("clusterkit: delete custom data %q: %w", key, err)
	}
	return nil
}

// ListCustomDataKeys returns every custom-data key, sorted.
func (ck *ClusterKit) ListCustomDataKeys(ctx context.Context) ([]string, error) {
	r, err := ck.running()
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	prefix := ck.keys.dataPrefix()
	resp, err := r.cli.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
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
