package clusterkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// RouterOptions configures a Router. Zero values mean the documented
// defaults; Etcd.Endpoints is required.
type RouterOptions struct {
	// ClusterName is the cluster to follow; default DefaultClusterName.
	ClusterName string
	// Etcd is the etcd cluster the nodes use: for external etcd, the nodes'
	// Etcd options; for embedded etcd, the members' client URLs
	// (ClusterKit.EtcdEndpoints) and, unless the cluster runs with
	// InsecurePlaintext, a client certificate signed by the cluster CA:
	// embedded etcd refuses clients without one. RequestClientCertificate
	// gets one with the join token (its EtcdConfig fills this field); a
	// node's own DataDir/tls files serve too.
	Etcd EtcdConfig
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

// Router follows a cluster's partition map in etcd without joining it: no
// member record, no lease, no hooks, no share of the partitions. A process
// that routes requests but holds no data (an API gateway, a client) uses
// it for the same lookups a node has (GetPartition, GetPrimary,
// GetReplicas, GetNodes), lock-free and allocation-free; each Partition
// carries its epoch. Safe for concurrent use. Its one goroutine, which
// applies the watch, ends with Close.
type Router struct {
	lookups
	cli     *clientv3.Client
	watch   *watcher.Watcher
	decoder decoder
	cfg     clusterConfig
	name    string
	cancel  context.CancelFunc
	done    chan struct{}
	close   sync.Once

	// mu guards view (written by the apply goroutine only); applied is
	// closed and replaced after every batch.
	mu      sync.Mutex
	view    *view
	applied chan struct{}
}

// NewRouter connects to etcd, reads the cluster's config and follows its
// state. It returns once it has read the state as of now (the lookups
// answer ErrNotStarted until the cluster has a map). Errors wrap
// ErrInvalidOptions (bad options), ErrNotFound (no such cluster in that
// etcd) or are etcd's; ctx bounds the start only.
func NewRouter(ctx context.Context, opts RouterOptions) (*Router, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ccfg, err := etcdClientConfig(o.Etcd, o.Etcd.Endpoints, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("clusterkit: router: %w", err)
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("clusterkit: router: connect to etcd %v: %w", o.Etcd.Endpoints, err)
	}
	k := newKeys(o.ClusterName)
	cfg, err := readConfig(ctx, cli, k, o.ClusterName)
	if err != nil {
		cli.Close()
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := watcher.Watch(wctx, cli, k.root, watcher.WithLogger(o.Logger), watcher.WithoutPrevValues())
	if err != nil {
		cancel()
		cli.Close()
		return nil, fmt.Errorf("clusterkit: router: watch cluster %q: %w", o.ClusterName, err)
	}
	r := &Router{cli: cli, watch: w, cfg: cfg, name: o.ClusterName, cancel: cancel, done: make(chan struct{}), view: newView(cfg.PartitionCount), applied: make(chan struct{}),
		decoder: decoder{keys: k, partitions: cfg.PartitionCount, log: o.Logger}}
	go r.follow()
	if err := r.waitFor(ctx, func(v *view) bool { return v.rev > 0 }); err != nil {
		r.Close()
		return nil, fmt.Errorf("clusterkit: router: read cluster %q: %w", o.ClusterName, err)
	}
	return r, nil
}

func (o RouterOptions) withDefaults() (RouterOptions, error) {
	if o.ClusterName == "" {
		o.ClusterName = DefaultClusterName
	}
	if len(o.ClusterName) > 64 || !namePattern.MatchString(o.ClusterName) {
		return o, invalid("RouterOptions.ClusterName", "must be 1 to 64 characters of [A-Za-z0-9._-]", o.ClusterName)
	}
	if len(o.Etcd.Endpoints) == 0 {
		return o, invalid("RouterOptions.Etcd.Endpoints", "must name at least one etcd client URL", "[]")
	}
	if err := o.Etcd.check(); err != nil {
		return o, err
	}
	if o.Etcd.DialTimeout == 0 {
		o.Etcd.DialTimeout = DefaultDialTimeout
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o, nil
}

// readConfig reads the cluster's config; ErrNotFound when it has none.
func readConfig(ctx context.Context, cli *clientv3.Client, k keys, cluster string) (clusterConfig, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := cli.Get(rctx, k.config())
	if err != nil {
		return clusterConfig{}, fmt.Errorf("clusterkit: router: read config of cluster %q: %w", cluster, err)
	}
	var cfg clusterConfig
	if len(resp.Kvs) == 0 {
		return cfg, fmt.Errorf("%w: cluster %q has no config at %s (is ClusterName right, and has a node started?)", ErrNotFound, cluster, k.config())
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &cfg); err != nil || cfg.PartitionCount < 1 {
		return cfg, fmt.Errorf("%w: cluster %q has an unreadable config at %s", ErrConfigMismatch, cluster, k.config())
	}
	if cfg.FormatVersion > formatVersion {
		return cfg, fmt.Errorf("%w: cluster %q uses format version %d, this router knows %d", ErrConfigMismatch, cluster, cfg.FormatVersion, formatVersion)
	}
	return cfg, nil
}

// follow applies watch batches and publishes a snapshot after each, until
// the watch ends. It is the router's only goroutine.
func (r *Router) follow() {
	defer close(r.done)
	for b := range r.watch.Batches() {
		r.mu.Lock()
		v, oldAssign := r.view, r.view.assign
		changes := r.decoder.apply(v, b, time.Now())
		publishSnapshot(&r.snap, "", v, v.leader(), b.Initial, oldAssign, changes)
		close(r.applied)
		r.applied = make(chan struct{})
		r.mu.Unlock()
	}
}

// waitFor waits until cond holds on the view, checked after every batch.
func (r *Router) waitFor(ctx context.Context, cond func(v *view) bool) error {
	for {
		r.mu.Lock()
		ok, ch := cond(r.view), r.applied
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			return errors.Join(ErrStopped, r.watch.Err())
		}
	}
}

// Version returns the version of the partition map the lookups answer
// from; 0 before the cluster has one.
func (r *Router) Version() int64 { return r.snap.Load().version }

// WaitVersion waits until the router answers from map version v or later.
func (r *Router) WaitVersion(ctx context.Context, v int64) error {
	return r.waitFor(ctx, func(vw *view) bool { return vw.assign != nil && vw.assign.Version >= v })
}

// Nodes returns the cluster's live members, sorted by ID. The slice is
// shared and read-only.
func (r *Router) Nodes() []Node { return r.snap.Load().members }

// Leader returns the ID of the node that leads the cluster, "" when none.
func (r *Router) Leader() string { return r.snap.Load().leader }

// GetCluster returns the cluster as the router sees it: members, leader,
// map (a copy the caller owns), as ClusterKit.GetCluster does for a node.
func (r *Router) GetCluster() *Cluster {
	return clusterOf(r.snap.Load(), r.name, r.cfg.PartitionCount, r.cfg.ReplicationFactor)
}

// NodeOperations returns the nodes under an operator's order (cordoned,
// draining) with a drain's progress, sorted by node, as
// ClusterKit.NodeOperations does.
func (r *Router) NodeOperations() []NodeOperationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.view.nodeOperations()
}

// Updated returns a channel that is closed once the router has applied
// the next change it reads from etcd (the map, a member, the leader, an
// operator's order, or any other write under the cluster's prefix); the
// lookups and GetCluster answer from it by then. Call Updated again for
// the change after, and call it before reading the state, so that no
// change falls between. The channel is not closed when the router stops:
// select on Done as well. It takes the router's lock briefly; the lookups
// stay lock-free.
func (r *Router) Updated() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// Done is closed once the router stopped following the cluster: after
// Close, or when the watch failed for good (Err says why).
func (r *Router) Done() <-chan struct{} { return r.done }

// Err returns nil while the router follows the cluster, and why it
// stopped once Done is closed (watcher.ErrClosed after Close).
func (r *Router) Err() error { return r.watch.Err() }

// Close stops following and closes the etcd client. The lookups keep
// answering from the last map. Idempotent.
func (r *Router) Close() error {
	r.close.Do(func() {
		r.watch.Close()
		<-r.done
		r.cancel()
		r.cli.Close()
	})
	return nil
}
