package watcher

// maxQueuedBytes bounds the batches that wait, one per revision, behind the
// one on offer (keys and values, plus eventOverhead per event). Past it the
// watcher coalesces (see outbox). A variable for tests.
var maxQueuedBytes = 1 << 20

// eventOverhead is what an Event costs besides its key and value bytes.
const eventOverhead = 128

// outbox holds what the consumer has not received, so that the watcher's
// goroutine keeps reading etcd while the consumer is busy. (Blocked on a
// send, it would leave the etcd client to buffer every response, without
// bound, while the consumer catches up.)
//
// One batch is on offer (head). Behind it, batches wait as they came, one
// per revision, up to maxQueuedBytes. Past that bound the outbox
// coalesces: it merges what waits and every change after it into one
// entry per key (since), the key as the consumer will hold it once it has
// head and the key as it is now, and offers their net difference as one
// Coalesced batch once head is taken. Memory is then bounded by the keys
// under the prefix, not by how far behind the consumer is.
//
// Only the watcher's run goroutine uses it.
type outbox struct {
	head  *Batch
	queue []queued
	bytes int // of queue
	// since is non-nil while coalescing; the queue is then empty.
	since map[string]*keyChange
}

// queued is a waiting batch with, per event, its key's state before it.
type queued struct {
	b      Batch
	before []keyState
}

// keyState is a key as the watcher holds it; present false: absent.
type keyState struct {
	kv      kv
	present bool
}

// keyChange is one key before and after a stretch of changes.
type keyChange struct{ before, after keyState }

// stateAfter is e's key as e leaves it.
func stateAfter(e Event) keyState {
	if e.Type == Delete {
		return keyState{}
	}
	return keyState{present: true, kv: kv{value: e.Value, create: e.CreateRevision, mod: e.ModRevision, version: e.Version, lease: e.Lease}}
}

// add puts b (before: each event's key before it) behind what the consumer
// has not received. It reports whether b must be offered now: the outbox
// was empty.
func (o *outbox) add(b Batch, before []keyState) (offer bool) {
	switch {
	case o.since != nil:
		o.merge(b.Events, before)
	case o.head == nil:
		return true
	default:
		o.queue = append(o.queue, queued{b: b, before: before})
		o.bytes += batchBytes(b)
		if o.bytes > maxQueuedBytes {
			o.since = map[string]*keyChange{}
			for _, q := range o.queue {
				o.merge(q.b.Events, q.before)
			}
			o.queue, o.bytes = nil, 0
		}
	}
	return false
}

// merge records events (before: each one's key before it) in since: the
// first change of a key fixes its before, every change its after.
func (o *outbox) merge(events []Event, before []keyState) {
	for i, e := range events {
		c := o.since[e.Key]
		if c == nil {
			c = &keyChange{before: before[i]}
			o.since[e.Key] = c
		}
		c.after = stateAfter(e)
	}
}

// next drops head (the consumer took it) and returns the batch to offer
// next, if any: the first waiting one, or the net difference of a
// coalesced stretch, at revision rev (the newest received). coalesced
// reports the latter. A stretch whose changes cancel out offers nothing.
func (o *outbox) next(rev int64) (b Batch, ok, coalesced bool) {
	o.head = nil
	switch {
	case len(o.queue) > 0:
		b = o.queue[0].b
		o.queue[0] = queued{}
		o.queue = o.queue[1:]
		o.bytes -= batchBytes(b)
		return b, true, false
	case o.since != nil:
		evs := netEvents(o.since, rev)
		o.since = nil
		if len(evs) == 0 {
			return Batch{}, false, false
		}
		return Batch{Events: evs, Revision: rev, Coalesced: true}, true, true
	}
	return Batch{}, false, false
}

// empty reports whether the consumer has received everything.
func (o *outbox) empty() bool { return o.head == nil && len(o.queue) == 0 && o.since == nil }

func batchBytes(b Batch) int {
	n := 0
	for _, e := range b.Events {
		n += len(e.Key) + len(e.Value) + eventOverhead
	}
	return n
}
