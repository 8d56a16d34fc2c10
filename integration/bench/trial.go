package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
)

// faultTrial is what one trial on a fresh 10-node cluster measured.
type faultTrial struct {
	formed                   time.Duration
	joinAgree, rebalance     time.Duration
	crashSeen, crashFailover time.Duration
	crashRepaired            time.Duration
	freezeSeen, freezeRepair time.Duration
	thawAgree                time.Duration
	leaderCrash, leaderGrace time.Duration
	voter, plain, learner    memories // at formation; the learner at its peak
	learnerFor               time.Duration
}

// runFaultTrial forms a 10-node cluster (three of them host the etcd
// voters, the others are plain clients of them) and measures, in order:
// the memory of every node; a learner (learnerStep); a join (node-11)
// until all agree, and that rebalance's duration as the leader reported
// it; a SIGKILL of a plain node (seen = first OnNodeLeave anywhere, failed
// over = every primary elsewhere, repaired = all agree on a settled map
// without it); a SIGSTOP of another plain node for 2 × TTL + 1 s (the same
// three, then its SIGCONT until all agree with it again); a SIGKILL of the
// leader until a survivor names another; a graceful stop (SIGTERM) of the
// leader the survivors then name until a survivor names another.
func runFaultTrial(ctx context.Context, cfg config) (faultTrial, error) {
	var r faultTrial
	c, formed, err := formCluster(ctx, cfg, 10)
	if err != nil {
		return r, fmt.Errorf("formation: %w", err)
	}
	defer c.Close()
	r.formed = formed
	roles, err := c.settledRoles(ctx)
	if err != nil {
		return r, err
	}
	for _, n := range c.Running() {
		m, err := memoryOf(n.Pid())
		if err != nil {
			return r, err
		}
		if roles[n.ID] == "voter" {
			r.voter = append(r.voter, m)
		} else {
			r.plain = append(r.plain, m)
		}
	}
	steps := []func(context.Context, *kvCluster, *faultTrial) error{learnerStep, joinStep, crashStep, freezeStep, leaderSteps}
	for _, s := range steps {
		if err := s(ctx, c, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

func joinStep(ctx context.Context, c *kvCluster, r *faultTrial) error {
	mark, begin := c.events.Len(), time.Now()
	if _, err := c.Start(ctx, "node-11"); err != nil {
		return err
	}
	if err := c.settle(ctx); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	r.joinAgree = time.Since(begin)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ev, err := c.events.Wait(wctx, mark, func(e store.Event) bool { return e.Kind == store.EventRebalanceComplete })
	if err != nil {
		return fmt.Errorf("join: no rebalance completed: %w", err)
	}
	r.rebalance = ev.Duration
	return nil
}

// plainVictim returns the first running plain node (no etcd member, not
// the leader): the crash and freeze steps measure a node whose loss etcd
// does not see.
func plainVictim(ctx context.Context, c *kvCluster) (*localcluster.Node, error) {
	plain, err := c.plainNodes(ctx)
	if err != nil {
		return nil, err
	}
	if len(plain) == 0 {
		return nil, errors.New("no plain node but the leader")
	}
	return c.Node(plain[0]), nil
}

func crashStep(ctx context.Context, c *kvCluster, r *faultTrial) error {
	victim, err := plainVictim(ctx, c)
	if err != nil {
		return fmt.Errorf("crash: %w", err)
	}
	mark, begin := c.events.Len(), time.Now()
	victim.Kill()
	if r.crashSeen, err = c.firstEvent(ctx, mark, begin, store.EventLeave, victim.ID); err != nil {
		return err
	}
	if err := c.WaitFailedOver(ctx, victim.ID); err != nil {
		return err
	}
	r.crashFailover = time.Since(begin)
	if err := c.settle(ctx); err != nil {
		return fmt.Errorf("crash: %w", err)
	}
	r.crashRepaired = time.Since(begin)
	return nil
}

func freezeStep(ctx context.Context, c *kvCluster, r *faultTrial) error {
	victim, err := plainVictim(ctx, c) // the crashed node is gone
	if err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	mark, begin := c.events.Len(), time.Now()
	victim.Freeze()
	defer victim.Thaw()
	if r.freezeSeen, err = c.firstEvent(ctx, mark, begin, store.EventLeave, victim.ID); err != nil {
		return err
	}
	if err := c.settle(ctx); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	r.freezeRepair = time.Since(begin)
	if d := 2*c.ttl + time.Second - time.Since(begin); d > 0 {
		time.Sleep(d)
	}
	thawed := time.Now()
	victim.Thaw()
	if err := c.settle(ctx); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	r.thawAgree = time.Since(thawed)
	return nil
}

func leaderSteps(ctx context.Context, c *kvCluster, r *faultTrial) error {
	old, err := c.leader(ctx)
	if err != nil {
		return err
	}
	begin := time.Now()
	c.Node(old).Kill()
	// The next leader is stopped without waiting for the map to settle
	// (the measure is the handover, not the repair).
	if old, err = c.waitNewLeader(ctx, old); err != nil {
		return err
	}
	r.leaderCrash = time.Since(begin)
	begin = time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- c.Node(old).Stop(ctx) }()
	if _, err := c.waitNewLeader(ctx, old); err != nil {
		return err
	}
	r.leaderGrace = time.Since(begin)
	if err := <-stopped; err != nil {
		return fmt.Errorf("graceful stop of leader %s: %w", old, err)
	}
	return nil
}
