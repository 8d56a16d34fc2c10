package embedetcd

import (
	"context"
	"fmt"

	"go.uber.org/zap"
)

// Settle finishes the join of a member that Start restarted as a learner:
// its process died after the learner was added and before it was promoted
// (a node killed while its member joined), and etcd restarts a member in
// the role its data holds. Left alone, such a learner holds the cluster's
// one learner slot and never votes.
//
// Settle promotes m once it has caught up when the cluster has fewer than
// Config.MaxVoters voters (or MaxVoters is 0); otherwise it gives the seat
// back: it removes m from the cluster, stops it, deletes its member data
// and returns an error wrapping ErrEnoughVoters. It does nothing for a
// voter. It asks the voters m knows of (a learner answers only
// serializable requests) and returns when ctx ends; a join cut short
// that way is undone as Join undoes one (see Join), unless the promotion
// committed. On any error other than a kept voter, m is stopped.
//
// Settle must not run concurrently with Stop of m by another goroutine.
func Settle(ctx context.Context, m *Member) error {
	if !m.IsLearner() {
		return nil
	}
	endpoints := m.OtherVoterURLs()
	if len(endpoints) == 0 {
		return fmt.Errorf("%w: settle learner %q: it knows no voter", ErrJoin, m.s.Name)
	}
	cli, err := m.s.membershipClient(endpoints)
	if err != nil {
		return fmt.Errorf("embedetcd: settle learner %q: %w", m.s.Name, err)
	}
	defer cli.Close()
	j := &joiner{s: m.s, cli: cli}
	if err := j.checkVoters(ctx); err != nil {
		_, err = j.undo(m, m.ID(), err)
		return err
	}
	if err := j.promote(ctx, m); err != nil {
		_, err = j.undo(m, m.ID(), err)
		return err
	}
	m.log.Info("restarted learner promoted to voter", zap.String("id", fmt.Sprintf("%x", m.ID())))
	return nil
}
