package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// learnerSample is one node's memory at one moment.
type learnerSample struct {
	at time.Time
	m  memory
}

// learnerStep measures a learner. ClusterKit keeps none: a node's member
// is a learner only while it joins, until it caught up and is promoted.
// So the step makes one join: it stops gracefully a voter that is not the
// ClusterKit leader (its member leaves etcd), samples the memory of every
// plain node every 20 ms until a node names one of them a voter, and
// keeps that node's largest RSS from its log's "added as learner" on (the
// promotion, its log's "joined the cluster as a voter", comes a fraction
// of a second later; the samples go on until a node names it a voter, at
// most a second more). The stopped node then runs again (a plain client
// now) and the cluster settles.
func learnerStep(ctx context.Context, c *kvCluster, r *faultTrial) error {
	roles, err := c.settledRoles(ctx)
	if err != nil {
		return err
	}
	leader, err := c.leader(ctx)
	if err != nil {
		return err
	}
	var voter string
	var plain []string
	for _, n := range c.Running() {
		switch {
		case roles[n.ID] == "none":
			plain = append(plain, n.ID)
		case n.ID != leader && voter == "":
			voter = n.ID
		}
	}
	if voter == "" || len(plain) == 0 {
		return fmt.Errorf("learner: no voter but the leader, or no plain node (%v)", roles)
	}
	// A graceful stop may outlast the 5 s after which a plain node's
	// member joins: sample from the start.
	stopped := make(chan error, 1)
	go func() { stopped <- c.Node(voter).Stop(ctx) }()
	samples, joined, err := c.sampleUntilVoter(ctx, plain)
	if serr := <-stopped; serr != nil {
		return fmt.Errorf("learner: graceful stop of voter %s: %w", voter, serr)
	}
	if err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	added, promoted, err := c.joinWindow(joined)
	if err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	var peak memory
	for _, s := range samples[joined] {
		if !s.at.Before(added) && s.m.rss > peak.rss {
			peak = s.m
		}
	}
	if peak.rss == 0 {
		return fmt.Errorf("learner: no sample of %s after it was added as a learner", joined)
	}
	r.learner, r.learnerFor = append(r.learner, peak), promoted.Sub(added)
	if _, err := c.Start(ctx, voter); err != nil {
		return fmt.Errorf("learner: restart %s: %w", voter, err)
	}
	if err := c.settle(ctx); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	return nil
}

// sampleUntilVoter samples the memory of the plain nodes every 20 ms
// until a running node names one of them a voter (at most a minute), and
// returns the samples and that node.
func (c *kvCluster) sampleUntilVoter(ctx context.Context, plain []string) (map[string][]learnerSample, string, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	samples := map[string][]learnerSample{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		for _, id := range plain {
			m, err := memoryOf(c.Node(id).Pid())
			if err != nil {
				return nil, "", err
			}
			samples[id] = append(samples[id], learnerSample{time.Now(), m})
		}
		if i%10 == 9 { // every 200 ms
			if roles, err := etcdRoles(wctx, c.Running()[0]); err == nil {
				for _, id := range plain {
					if roles[id] == "voter" {
						return samples, id, nil
					}
				}
			}
		}
		select {
		case <-wctx.Done():
			return nil, "", errors.New("no plain node became an etcd voter within a minute")
		case <-tick.C:
		}
	}
}
