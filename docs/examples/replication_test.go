package examples_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// fence is what a replica keeps per partition: the newest epoch it knows.
// Safe for concurrent use; the zero value is ready.
type fence struct {
	mu     sync.Mutex
	newest map[int]uint64
}

// admit accepts a message about partition p sent in epoch e unless a newer
// epoch is known (from this node's own map, mapEpoch, or from an earlier
// message); on refusal it returns the newest epoch, for the sender to learn
// that it is no longer the primary.
func (f *fence) admit(p int, e, mapEpoch uint64) (newest uint64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.newest == nil {
		f.newest = map[int]uint64{}
	}
	newest = max(f.newest[p], mapEpoch)
	if e < newest {
		return newest, false
	}
	f.newest[p] = e
	return e, true
}

// A primary of epoch 3 is replaced (its lease expired, the map moved the
// partition: epoch 4). Once a replica has seen epoch 4, the old primary's
// writes are refused, even if the old primary has not noticed yet.
func Example_epochFence() {
	var replica fence
	_, ok := replica.admit(7, 3, 3)
	fmt.Println("old primary, epoch 3:", ok)
	_, ok = replica.admit(7, 4, 3) // the new primary's first message
	fmt.Println("new primary, epoch 4:", ok)
	newest, ok := replica.admit(7, 3, 3)
	fmt.Println("old primary again:", ok, "newest:", newest)
	// Output:
	// old primary, epoch 3: true
	// new primary, epoch 4: true
	// old primary again: false newest: 4
}

// errNotPrimary: forward the write to ck.GetPrimary(p) instead.
var errNotPrimary = errors.New("not the primary")

// sendFunc delivers one replicated write to a replica, tagged with the
// partition's epoch (the replica checks it with fence.admit).
type sendFunc func(ctx context.Context, to clusterkit.Node, p *clusterkit.Partition, key string, val []byte) error

// write is the primary's side of a replicated write. sync waits for a
// majority of the serving set (primary included); async acknowledges at
// once and replicates in the background (here without waiting for the
// goroutines: a real store queues and retries them).
func write(ctx context.Context, ck *clusterkit.ClusterKit, key string, val []byte, sync bool, apply func(p *clusterkit.Partition) error, send sendFunc) error {
	p, err := ck.GetPartition(key)
	if err != nil {
		return err
	}
	if !ck.IsPrimary(p) {
		return fmt.Errorf("%w: partition %s, epoch %d, ask %s", errNotPrimary, p.ID, p.Epoch, p.PrimaryNode)
	}
	if err := apply(p); err != nil { // version the entry with (p.Epoch, sequence)
		return err
	}
	replicas := ck.GetReplicas(p)
	if !sync {
		for _, r := range replicas {
			go send(context.WithoutCancel(ctx), r, p, key, val)
		}
		return nil
	}
	acks := make(chan error, len(replicas))
	for _, r := range replicas {
		go func() { acks <- send(ctx, r, p, key, val) }()
	}
	need, got := (len(replicas)+1)/2+1, 1 // a majority; the primary has it
	for range replicas {
		if got >= need {
			break
		}
		if <-acks == nil {
			got++
		}
	}
	if got < need {
		return fmt.Errorf("partition %s: %d of %d copies: outcome unknown", p.ID, got, len(replicas)+1)
	}
	return nil
}
