package store

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

func notApplied(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errNotApplied}, args...)...)
}

func outcomeUnknown(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errOutcomeUnknown}, args...)...)
}

// write applies e to key as the primary of p (p.PrimaryNode is this node)
// and returns the version it got. In a quorum mode it is acknowledged once
// a majority of p's serving set holds it; a write that reached some nodes
// but not a majority, or whose primary learned of a newer epoch meanwhile,
// fails with errOutcomeUnknown.
func (s *Store) write(ctx context.Context, p *clusterkit.Partition, key string, e Entry) (Version, error) {
	if err := s.ensureActive(ctx, p); err != nil {
		return Version{}, err
	}
	pt := s.parts[p.Index]
	pt.mu.Lock()
	if !pt.primaryLocked(p.Epoch) {
		pt.mu.Unlock()
		return Version{}, notApplied("%s: epoch %d is over", p.ID, p.Epoch)
	}
	pt.seq++
	e.Version = Version{Epoch: p.Epoch, Seq: pt.seq}
	if !s.mode.quorum() {
		pt.mergeLocked(key, e)
		pt.mu.Unlock()
		s.fanOut(pathReplicate, replicateRequest{Partition: p.Index, Epoch: p.Epoch, Key: key, Entry: e}, p.ReplicaNodes, p.IncomingNodes)
		return e.Version, nil
	}
	pt.mu.Unlock()

	// Applied here only once a majority has it, so that a read never
	// returns a write that may still fail.
	need := majority(1+len(p.ReplicaNodes)) - 1
	if err := s.replicate(ctx, p, key, e, need); err != nil {
		return Version{}, err
	}
	pt.mu.Lock()
	pt.mergeLocked(key, e)
	// A fence that arrived meanwhile collected this node's entries without
	// this write; the replicas that acknowledged it had it by then, but
	// once this node knows of a newer epoch it stops acknowledging.
	fenced := !pt.primaryLocked(p.Epoch)
	pt.mu.Unlock()
	if fenced {
		return Version{}, outcomeUnknown("%s: a newer epoch than %d began during the write", p.ID, p.Epoch)
	}
	return e.Version, nil
}

// replicate sends key's entry to p's serving replicas and incoming nodes
// and returns once need serving replicas acknowledged it. The calls go on
// after it returned (they are bounded by peerTimeout), so that slower
// replicas get the write too.
func (s *Store) replicate(ctx context.Context, p *clusterkit.Partition, key string, e Entry, need int) error {
	msg := replicateRequest{Partition: p.Index, Epoch: p.Epoch, Key: key, Entry: e}
	results := s.fanOut(pathReplicate, msg, p.ReplicaNodes, p.IncomingNodes)
	acked, delivered, pending := 0, 0, len(p.ReplicaNodes)+len(p.IncomingNodes)
	var lastErr error
	for acked < need && pending > 0 {
		var r fanOutResult
		select {
		case r = <-results:
		case <-ctx.Done():
			return outcomeUnknown("%s: %d of %d replicas acknowledged: %v", p.ID, acked, need, ctx.Err())
		}
		pending--
		switch {
		case r.newer > 0:
			s.observe(p.Index, r.newer)
			return outcomeUnknown("%s: a node knows epoch %d, newer than %d", p.ID, r.newer, p.Epoch)
		case r.err != nil:
			lastErr = r.err
			if !isDialError(r.err) {
				delivered++ // it may have arrived
			}
		case r.serving:
			acked++
		default:
			delivered++
		}
	}
	if acked < need {
		if delivered == 0 {
			return notApplied("%s: no replica reachable (last error: %v)", p.ID, lastErr)
		}
		return outcomeUnknown("%s: %d of %d replicas acknowledged (last error: %v)", p.ID, acked, need, lastErr)
	}
	return nil
}

// fanOutResult is one node's answer to a fanned-out call.
type fanOutResult struct {
	peerResult
	id      string
	serving bool // the node is in the serving set (the first list)
}

// fanOut calls path with msg on every node of serving and others at once,
// each call bounded by peerTimeout, and returns a channel that receives
// every answer (it has room for all of them).
func (s *Store) fanOut(path string, msg any, serving, others []string) <-chan fanOutResult {
	results := make(chan fanOutResult, len(serving)+len(others))
	for i, ids := range [][]string{serving, others} {
		for _, id := range ids {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				ctx, cancel := context.WithTimeout(s.ctx, peerTimeout)
				defer cancel()
				results <- fanOutResult{s.peers.call(ctx, s.addrOf(id), path, msg, nil), id, i == 0}
			}()
		}
	}
	return results
}

// read returns key's entry as the primary of p. In a quorum mode it first
// confirms with a majority of p's serving set that no newer epoch has
// begun, so that a primary that was replaced without knowing it cannot
// answer with an old value.
func (s *Store) read(ctx context.Context, p *clusterkit.Partition, key string) (Entry, error) {
	if err := s.ensureActive(ctx, p); err != nil {
		return Entry{}, err
	}
	pt := s.parts[p.Index]
	pt.mu.Lock()
	if !pt.primaryLocked(p.Epoch) {
		pt.mu.Unlock()
		return Entry{}, notApplied("%s: epoch %d is over", p.ID, p.Epoch)
	}
	e := pt.entries[key]
	pt.mu.Unlock()
	if !s.mode.quorum() {
		return e, nil
	}
	if err := s.confirm(ctx, p, key); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// confirm asks p's serving replicas whether p's epoch is still the newest
// they know, until a majority (this node included) said yes.
func (s *Store) confirm(ctx context.Context, p *clusterkit.Partition, key string) error {
	need := majority(1+len(p.ReplicaNodes)) - 1
	if need == 0 {
		return nil
	}
	msg := checkRequest{Partition: p.Index, Epoch: p.Epoch, Key: key}
	results := s.fanOut(pathCheck, msg, p.ReplicaNodes, nil)
	ok := 0
	var lastErr error
	for range p.ReplicaNodes {
		var r fanOutResult
		select {
		case r = <-results:
		case <-ctx.Done():
			return notApplied("%s: confirming epoch %d: %v", p.ID, p.Epoch, ctx.Err())
		}
		switch {
		case r.newer > 0:
			s.observe(p.Index, r.newer)
			return notApplied("%s: a node knows epoch %d, newer than %d", p.ID, r.newer, p.Epoch)
		case r.err != nil:
			lastErr = r.err
		default:
			ok++
		}
		if ok >= need {
			return nil
		}
	}
	return notApplied("%s: %d of %d replicas confirmed epoch %d (last error: %v)", p.ID, ok, need, p.Epoch, lastErr)
}

// observe records a newer epoch of partition i learned from a refusal.
func (s *Store) observe(i int, epoch uint64) {
	pt := s.parts[i]
	pt.mu.Lock()
	pt.observeLocked(epoch)
	pt.mu.Unlock()
}

// ensureActive returns once this node has taken p over as the primary of
// p.Epoch, starting the take-over if needed.
func (s *Store) ensureActive(ctx context.Context, p *clusterkit.Partition) error {
	for {
		a, err := s.startActivation(p)
		if a == nil || err != nil {
			return err
		}
		select {
		case <-a.done:
			if a.err != nil && a.epoch == p.Epoch {
				return fmt.Errorf("%w: %s: taking over epoch %d: %v", errNotApplied, p.ID, p.Epoch, a.err)
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: taking over epoch %d: %v", errNotApplied, p.ID, p.Epoch, ctx.Err())
		}
	}
}

// startActivation returns the take-over to wait for before acting as the
// primary of p.Epoch: nil when it is done, the one running, or a new one.
// It fails when a newer epoch is known.
func (s *Store) startActivation(p *clusterkit.Partition) (*activation, error) {
	pt := s.parts[p.Index]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	switch {
	case pt.seen > p.Epoch:
		return nil, notApplied("%s: epoch %d is over, a node knows epoch %d", p.ID, p.Epoch, pt.seen)
	case pt.active == p.Epoch:
		return nil, nil
	case pt.activation != nil:
		return pt.activation, nil
	}
	a := &activation{epoch: p.Epoch, done: make(chan struct{})}
	pt.activation = a
	s.wg.Add(1)
	go s.activate(pt, a, p)
	return a, nil
}

// activate runs one take-over and publishes its outcome.
func (s *Store) activate(pt *partition, a *activation, p *clusterkit.Partition) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, activationTimeout)
	defer cancel()
	err := s.takeOver(ctx, p)
	pt.mu.Lock()
	if err == nil && pt.seen > p.Epoch {
		err = fmt.Errorf("a node knows epoch %d", pt.seen)
	}
	if err == nil {
		pt.active, pt.seq = p.Epoch, 0
		for _, e := range pt.entries {
			if e.Version.Epoch == p.Epoch {
				pt.seq = max(pt.seq, e.Version.Seq)
			}
		}
	}
	pt.activation = nil
	a.err = err
	pt.mu.Unlock()
	close(a.done)
	if err != nil {
		s.log.Debug("take-over failed", zap.String("partition", p.ID), zap.Uint64("epoch", p.Epoch), zap.Error(err))
		return
	}
	s.activations.Add(1)
	s.log.Debug("took over", zap.String("partition", p.ID), zap.Uint64("epoch", p.Epoch))
}
