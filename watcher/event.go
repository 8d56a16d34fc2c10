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
	// Events, in the order they happened. A live (non-Resync) batch holds
	// the events of exactly one etcd revision, in the order of the
	// transaction. It is empty only for an Initial batch of an empty prefix.
	Events []Event
	// Revision is the etcd revision the consumer's state is at once it has
	// applied this batch: the revision of a live batch's events, or the
	// revision of the read for an Initial or Resync batch.
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
}

// kv is the watcher's record of one key as last delivered.
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

// diff returns the events that turn state old into state fresh, read at
// revision rev: deletes (by key) first, then puts in ModRevision order. See
// Batch.Resync.
func diff(old, fresh map[string]kv, rev int64) []Event {
	var dels, puts []Event
	for k, o := range old {
		if f, ok := fresh[k]; !ok || f.create != o.create {
			dels = append(dels, deleteEvent(k, o, rev))
		}
	}
	for k, f := range fresh {
		o, ok := old[k]
		switch {
		case !ok || o.create != f.create:
			puts = append(puts, putEvent(k, f, nil))
		case o.mod != f.mod:
			puts = append(puts, putEvent(k, f, o.value))
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
