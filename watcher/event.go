package watcher

import (
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// EventType says whether an Event puts or deletes a key.
type EventType int

const (
	// Put creates or updates a key.
	Put EventType = iota + 1
	// Delete removes a key.
	Delete
)

// String returns "PUT" or "DELETE".
func (t EventType) String() string {
	switch t {
	case Put:
		return "PUT"
	case Delete:
		return "DELETE"
	default:
		return fmt.Sprintf("EventType(%d)", int(t))
	}
}

// Event is one change of one key under the watched prefix.
//
// The byte slices are shared with the watcher's own copy of the state and
// with later events (a later PrevValue is the same slice as this Value):
// consumers must not modify them.
type Event struct {
	Type EventType
	Key  string
	// Value is the new value of a Put, never nil (an empty value is an
	// empty, non-nil slice); nil for a Delete.
	Value []byte
	// PrevValue is the value last delivered for Key, for an update or a
	// Delete (non-nil, possibly empty); nil exactly when the key was not
	// present before, i.e. for a Put that creates the key. With
	// WithoutPrevValues it is empty (non-nil) instead of the old value.
	PrevValue []byte
	// ModRevision is the revision of the change. For a Delete in a Resync
	// batch the exact revision of the deletion is no longer known, and
	// ModRevision is the batch's Revision (the deletion happened at or
	// before it).
	ModRevision int64
	// CreateRevision, Version and Lease describe the key: for a Put the key
	// as written; for a Delete the key as last delivered (etcd does not send
	// them with a deletion).
	CreateRevision int64
	Version        int64
	Lease          int64
}

// IsCreate reports whether e is a Put of a key that was not present before.
func (e Event) IsCreate() bool { return e.Type == Put && e.PrevValue == nil }

// Batch is a group of Events delivered together, in order. Apply its
// Events in order.
type Batch struct {
	// Events, in the order they happened. A live batch (neither Resync
	// nor Coalesced) holds the events of exactly one etcd revision, in the
	// order of the transaction. It is empty only for an Initial batch of
	// an empty prefix.
	Events []Event
	// Revision is the etcd revision the consumer's state is at once it has
	// applied this batch: the revision of a live batch's events, the
	// revision of the read for an Initial or Resync batch, or the newest
	// revision received for a Coalesced one.
	Revision int64
	// Initial marks the first batch: one Put per key found by the initial
	// read, sorted by key. It is always delivered, even when empty.
	Initial bool
	// Resync marks a net difference computed after a re-read (the watch
	// could not resume because etcd compacted the revisions it needed). It
	// holds a Delete for every key that is gone, then a Put for every key
	// that is new or changed (ModRevision differs), in ModRevision order.
	// A key deleted and created again meanwhile (its CreateRevision
	// differs) gets a Delete of the old incarnation and a Put of the new one,
	// so consumers see that the key was re-created. Keys that did not change
	// get no event. Intermediate values are not delivered.
	Resync bool
	// Coalesced marks a net difference like Resync's (same order, same
	// rules), delivered when the consumer fell behind by more than the
	// watcher's queue bound (1 MiB of changes, see Batches): it stands for
	// every revision up to Revision that the consumer had not received. A
	// key created and deleted meanwhile gets no event.
	Coalesced bool
}

// kv is the watcher's record of one key as last received.
type kv struct {
	value                       []byte
	create, mod, version, lease int64
}

func kvOf(p *mvccpb.KeyValue) kv {
	v := p.Value
	if v == nil {
		v = []byte{} // so that a nil PrevValue always means "absent"
	}
	return kv{value: v, create: p.CreateRevision, mod: p.ModRevision, version: p.Version, lease: p.Lease}
}

func putEvent(key string, cur kv, prev []byte) Event {
	return Event{
		Type: Put, Key: key, Value: cur.value, PrevValue: prev,
		CreateRevision: cur.create, ModRevision: cur.mod, Version: cur.version, Lease: cur.lease,
	}
}

func deleteEvent(key string, old kv, rev int64) Event {
	return Event{
		Type: Delete, Key: key, PrevValue: old.value,
		CreateRevision: old.create, ModRevision: rev, Version: old.version, Lease: old.lease,
	}
}

// changesBetween pairs every key of state old with the same key in state
// fresh (either may lack it).
func changesBetween(old, fresh map[string]kv) map[string]*keyChange {
	out := make(map[string]*keyChange, max(len(old), len(fresh)))
	for k, o := range old {
		out[k] = &keyChange{before: keyState{kv: o, present: true}}
	}
	for k, f := range fresh {
		c := out[k]
		if c == nil {
			c = &keyChange{}
			out[k] = c
		}
		c.after = keyState{kv: f, present: true}
	}
	return out
}

// netEvents returns the events that take each key from its before to its
// after state, at revision rev: deletes (by key) first, then puts in
// ModRevision order. See Batch.Resync.
func netEvents(changes map[string]*keyChange, rev int64) []Event {
	var dels, puts []Event
	for k, c := range changes {
		b, a := c.before, c.after
		recreated := b.present && a.present && a.kv.create != b.kv.create
		if b.present && (!a.present || recreated) {
			dels = append(dels, deleteEvent(k, b.kv, rev))
		}
		switch {
		case !a.present:
		case !b.present || recreated:
			puts = append(puts, putEvent(k, a.kv, nil))
		case a.kv.mod != b.kv.mod:
			puts = append(puts, putEvent(k, a.kv, b.kv.value))
		}
	}
	sort.Slice(dels, func(i, j int) bool { return dels[i].Key < dels[j].Key })
	sort.Slice(puts, func(i, j int) bool {
		if puts[i].ModRevision != puts[j].ModRevision {
			return puts[i].ModRevision < puts[j].ModRevision
		}
		return puts[i].Key < puts[j].Key
	})
	return append(dels, puts...)
}
