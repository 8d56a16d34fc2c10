package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
)

// kvCluster is a cluster of examples/kvstore processes (this program run
// again as a node, see localcluster.SelfCommand) with every event every
// node saw.
type kvCluster struct {
	*localcluster.Cluster
	events *localcluster.EventLog
	ttl    time.Duration
}

// formCluster starts n nodes (startCluster) — node-1 first (it bootstraps the cluster),
// then the others all at once — and returns when all of them agree on one
// settled map, with the time from the first process start. extra are
// kvstore flags for every node (e.g. -etcd for external mode).
func formCluster(ctx context.Context, cfg config, n int, extra ...string) (*kvCluster, time.Duration, error) {
	begin := time.Now()
	c, err := startCluster(ctx, cfg, n, extra...)
	if err != nil {
		return nil, 0, err
	}
	if err := c.settle(ctx); err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, time.Since(begin), nil
}

// startCluster starts n nodes, node-1 first and then the others all at
// once, and returns when each is serving.
func startCluster(ctx context.Context, cfg config, n int, extra ...string) (*kvCluster, error) {
	c, err := newKV(cfg, extra...)
	if err != nil {
		return nil, err
	}
	cl := c.Cluster
	if _, err := cl.Start(ctx, "node-1"); err != nil {
		cl.Close()
		return nil, err
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 2; i <= n; i++ {
		wg.Go(func() {
			_, errs[i-1] = cl.Start(ctx, fmt.Sprintf("node-%d", i))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cl.Close()
		return nil, err
	}
	return c, nil
}

// newKV prepares a cluster with no node running; extra are kvstore flags
// for every node.
func newKV(cfg config, extra ...string) (*kvCluster, error) {
	cmd, err := localcluster.SelfCommand()
	if err != nil {
		return nil, err
	}
	cmd.Args = extra
	events := &localcluster.EventLog{}
	cl, err := localcluster.New(localcluster.Options{Command: cmd, Mode: store.ModeSync, Partitions: 64,
		ReplicationFactor: 3, LeaseTTL: cfg.ttl, Events: events.Add})
	if err != nil {
		return nil, err
	}
	return &kvCluster{Cluster: cl, events: events, ttl: cfg.ttl}, nil
}

// settle waits (at most 3 minutes) until every running node agrees.
func (c *kvCluster) settle(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	_, err := c.WaitSettled(sctx)
	return err
}

// firstEvent returns how long after begin any node first reported an event
// of kind about subject made after mark.
func (c *kvCluster) firstEvent(ctx context.Context, mark int, begin time.Time, kind, subject string) (time.Duration, error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ev, err := c.events.Wait(wctx, mark, func(e store.Event) bool {
		return e.Kind == kind && (subject == "" || e.Subject == subject)
	})
	if err != nil {
		return 0, fmt.Errorf("no %s event about %q: %w", kind, subject, err)
	}
	return ev.At.Sub(begin), nil
}

// leader returns the ClusterKit leader as the first running node sees it.
func (c *kvCluster) leader(ctx context.Context) (string, error) {
	for _, n := range c.Running() {
		if n.Frozen() {
			continue
		}
		if v, err := n.ReadView(ctx); err == nil && v.Leader != "" {
			return v.Leader, nil
		}
	}
	return "", errors.New("no node names a leader")
}

// waitNewLeader returns the new leader once a running node other than old
// names a running node other than old as the leader.
func (c *kvCluster) waitNewLeader(ctx context.Context, old string) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for wctx.Err() == nil {
		for _, n := range c.Running() {
			if n.ID == old || n.Frozen() {
				continue
			}
			v, err := n.ReadView(wctx)
			if err != nil || v.Leader == "" || v.Leader == old {
				continue
			}
			if l := c.Node(v.Leader); l != nil && l.Running() {
				return v.Leader, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "", fmt.Errorf("no new leader after %s: %w", old, wctx.Err())
}
