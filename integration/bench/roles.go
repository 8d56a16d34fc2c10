package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
)

// etcdRoles returns every member's etcd role (voter, learner or none) as
// node n's GET /cluster names them (refreshed by its etcd upkeep, once a
// second).
func etcdRoles(ctx context.Context, n *localcluster.Node) (map[string]string, error) {
	v, err := n.ReadView(ctx)
	if err != nil {
		return nil, err
	}
	roles := make(map[string]string, len(v.Members))
	for _, m := range v.Members {
		roles[m.ID] = m.EtcdRole
	}
	return roles, nil
}

// settledRoles waits (at most a minute) until a running node names a role
// for every running node, DefaultMaxVoters voters and no learner, and
// returns the roles. Which nodes hold the voters depends on the order in
// which they joined, not on their IDs.
func (c *kvCluster) settledRoles(ctx context.Context) (map[string]string, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	last := "no answer"
	for {
		roles, why := c.rolesNow(wctx)
		if why == "" {
			return roles, nil
		}
		last = why
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("etcd roles did not settle: %s: %w", last, wctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rolesNow returns the roles, or why they have not settled.
func (c *kvCluster) rolesNow(ctx context.Context) (map[string]string, string) {
	running := c.Running()
	if len(running) == 0 {
		return nil, "no node runs"
	}
	roles, err := etcdRoles(ctx, running[0])
	if err != nil {
		return nil, err.Error()
	}
	voters := 0
	for _, n := range running {
		switch roles[n.ID] {
		case "voter":
			voters++
		case "none":
		default:
			return nil, fmt.Sprintf("%s is %q", n.ID, roles[n.ID])
		}
	}
	if voters != clusterkit.DefaultMaxVoters {
		return nil, fmt.Sprintf("%d voters", voters)
	}
	return roles, ""
}

// plainNodes returns the running nodes without an etcd member, other than
// the ClusterKit leader, sorted by ID.
func (c *kvCluster) plainNodes(ctx context.Context) ([]string, error) {
	roles, err := c.settledRoles(ctx)
	if err != nil {
		return nil, err
	}
	leader, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range c.Running() {
		if roles[n.ID] == "none" && n.ID != leader {
			out = append(out, n.ID)
		}
	}
	slices.Sort(out)
	return out, nil
}

// joinWindow returns when node id's log last says its etcd member joined
// as a voter, and when that member was added as a learner before it (a
// node may have added and given back a learner earlier, at formation).
func (c *kvCluster) joinWindow(id string) (added, voter time.Time, err error) {
	f, err := os.Open(filepath.Join(c.Dir(), id+".log"))
	if err != nil {
		return added, voter, err
	}
	defer f.Close()
	var lastAdd time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		learner, joined := strings.Contains(line, "added as learner"), strings.Contains(line, "joined the cluster as a voter")
		if !learner && !joined {
			continue
		}
		stamp, _, _ := strings.Cut(line, "\t")
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", stamp)
		if err != nil {
			return added, voter, fmt.Errorf("%s's log: time of %q: %w", id, line, err)
		}
		if learner {
			lastAdd = at
		} else {
			added, voter = lastAdd, at
		}
	}
	if added.IsZero() {
		return added, voter, fmt.Errorf("%s's log names no learner then voter", id)
	}
	return added, voter, sc.Err()
}
