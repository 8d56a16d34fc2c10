package store

import (
	"context"
	"fmt"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// takeOver makes this node the acting primary of p in epoch p.Epoch:
//
//  1. fence: every live member of the cluster (this node too) records the
//     epoch, so that it refuses the writes and read checks of any older
//     primary from then on, and sends everything it holds of the
//     partition; this node merges it all by version. A member that does
//     not answer is asked again until it answers or leaves the membership
//     (its lease expires), so no acknowledged write can be missed: a write
//     acknowledged in an older epoch is on a majority of that epoch's
//     serving set, and each of those nodes either answered or is gone.
//     Nodes that were members recently are asked once too: a process whose
//     lease lapsed still holds its data, and ClusterKit may have handed
//     its partitions to nodes without a copy (NoSource).
//  2. sync: the merged partition goes to p's serving replicas until a
//     majority of the serving set holds it, so that what this primary is
//     about to serve survives its own crash.
//
// It fails when a node knows a newer epoch, when this node's map moves
// past p.Epoch or names another primary, or when ctx ends.
func (s *Store) takeOver(ctx context.Context, p *clusterkit.Partition) error {
	pt := s.parts[p.Index]
	if _, newest, ok := s.fence(pt, p.Epoch, p.Epoch); !ok {
		return fmt.Errorf("this node knows epoch %d", newest)
	}
	if err := s.fenceMembers(ctx, p); err != nil {
		return err
	}
	return s.syncReplicas(ctx, p)
}

// fenceMembers runs step 1 of takeOver on the other live members.
func (s *Store) fenceMembers(ctx context.Context, p *clusterkit.Partition) error {
	pt := s.parts[p.Index]
	msg := fenceRequest{Partition: p.Index, Epoch: p.Epoch}
	answered := map[string]bool{s.me: true}
	for round := 0; ; round++ {
		c := s.ck.GetCluster()
		if err := stillPrimary(c, p, s.me); err != nil {
			return err
		}
		var ask []string
		for _, n := range c.Nodes {
			if !answered[n.ID] && n.Status != clusterkit.NodeOffline {
				ask = append(ask, n.ID)
			}
		}
		if len(ask) == 0 {
			s.fenceFormer(ctx, p, c)
			return nil
		}
		if round > 0 && !sleep(ctx, retryDelay) {
			return fmt.Errorf("fence: %v; no answer from %v", ctx.Err(), ask)
		}
		type reply struct {
			id string
			fenceResponse
			peerResult
		}
		replies := make(chan reply, len(ask))
		for _, id := range ask {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				cctx, cancel := context.WithTimeout(ctx, peerTimeout)
				defer cancel()
				a := reply{id: id}
				a.peerResult = s.peers.call(cctx, s.addrOf(id), pathFence, msg, &a.fenceResponse)
				replies <- a
			}()
		}
		for range ask {
			a := <-replies
			switch {
			case a.newer > 0:
				s.observe(p.Index, a.newer)
				return fmt.Errorf("fence: %s knows epoch %d", a.id, a.newer)
			case a.err == nil:
				pt.mergeAll(a.Entries)
				answered[a.id] = true
			}
		}
	}
}

// fenceFormer fences, once and briefly, the recent members that are not
// members now, and merges what those that answer hold.
func (s *Store) fenceFormer(ctx context.Context, p *clusterkit.Partition, c *clusterkit.Cluster) {
	members := map[string]bool{}
	for _, n := range c.Nodes {
		members[n.Services[ServiceName]] = true
	}
	addrs := s.formerMembers(members)
	if len(addrs) == 0 {
		return
	}
	msg := fenceRequest{Partition: p.Index, Epoch: p.Epoch}
	replies := make(chan fenceResponse, len(addrs))
	for _, a := range addrs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			cctx, cancel := context.WithTimeout(ctx, formerTimeout)
			defer cancel()
			var r fenceResponse
			if res := s.peers.call(cctx, a, pathFence, msg, &r); res.err != nil || res.newer > 0 {
				r.Entries = nil
			}
			replies <- r
		}()
	}
	pt := s.parts[p.Index]
	for range addrs {
		pt.mergeAll((<-replies).Entries)
	}
}

// formerTimeout bounds the call to a former member.
const formerTimeout = 300 * time.Millisecond

// syncReplicas runs step 2 of takeOver. Incoming nodes get the copy too,
// once, without being waited for.
func (s *Store) syncReplicas(ctx context.Context, p *clusterkit.Partition) error {
	need := majority(1+len(p.ReplicaNodes)) - 1
	msg := syncRequest{Partition: p.Index, Epoch: p.Epoch, Entries: s.parts[p.Index].snapshot()}
	acked := map[string]bool{}
	incoming := p.IncomingNodes
	for round := 0; len(acked) < need; round++ {
		if round > 0 {
			if !sleep(ctx, retryDelay) {
				return fmt.Errorf("sync: %v; %d of %d replicas hold the partition", ctx.Err(), len(acked), need)
			}
			if err := stillPrimary(s.ck.GetCluster(), p, s.me); err != nil {
				return err
			}
		}
		var ask []string
		for _, id := range p.ReplicaNodes {
			if !acked[id] {
				ask = append(ask, id)
			}
		}
		results := s.fanOut(pathSync, msg, ask, incoming)
		incoming = nil
		for range cap(results) {
			r := <-results
			switch {
			case r.newer > 0:
				s.observe(p.Index, r.newer)
				return fmt.Errorf("sync: a replica knows epoch %d", r.newer)
			case r.err == nil && r.serving:
				acked[r.id] = true
			}
		}
	}
	return nil
}

// stillPrimary fails when c no longer shows me as the primary of p's epoch.
func stillPrimary(c *clusterkit.Cluster, p *clusterkit.Partition, me string) error {
	if p.Index >= len(c.Partitions) {
		return fmt.Errorf("no partition map")
	}
	if q := c.Partitions[p.Index]; q.Epoch != p.Epoch || q.PrimaryNode != me {
		return fmt.Errorf("the map moved on to epoch %d (primary %s)", q.Epoch, q.PrimaryNode)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
