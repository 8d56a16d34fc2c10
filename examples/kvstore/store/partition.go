package store

import (
	"maps"
	"sync"
)

// partition is what this node holds of one partition and its part in the
// epoch protocol. Every field is guarded by mu; no network call is made
// while mu is held.
type partition struct {
	mu      sync.Mutex
	entries map[string]Entry
	// seen is the newest epoch another node told this one about (a fence,
	// a replicated write, a sync or a read check carried it).
	seen uint64
	// active is the epoch in which this node finished taking the partition
	// over as its primary (0: never); seq is the last sequence number it
	// gave a write in that epoch.
	active uint64
	seq    uint64
	// activation is the take-over in progress, if any.
	activation *activation
}

// activation is one take-over of a partition by its new primary; done is
// closed once err is set.
type activation struct {
	epoch uint64
	done  chan struct{}
	err   error
}

func newPartition() *partition { return &partition{entries: map[string]Entry{}} }

// admitLocked applies the epoch rule to a message of epoch e: it refuses
// (ok false) a message older than the newest epoch this node knows — seen,
// or mapEpoch, the epoch its own partition map shows — and otherwise
// records e as seen. newest is the epoch to report back on a refusal.
func (pt *partition) admitLocked(e, mapEpoch uint64) (newest uint64, ok bool) {
	newest = max(pt.seen, mapEpoch)
	if e < newest {
		return newest, false
	}
	pt.seen = max(pt.seen, e)
	return e, true
}

// observeLocked records an epoch learned from a refusal.
func (pt *partition) observeLocked(e uint64) { pt.seen = max(pt.seen, e) }

// primaryLocked reports whether this node may act as the primary of epoch
// e: it finished taking over in e and no node has shown it a newer epoch.
func (pt *partition) primaryLocked(e uint64) bool { return pt.active == e && pt.seen <= e }

// mergeLocked keeps e for key unless the entry held has the same or a
// newer version, so that merges commute: replicated writes, copies and
// syncs can arrive in any order and the newest version wins.
func (pt *partition) mergeLocked(key string, e Entry) {
	if cur, ok := pt.entries[key]; ok && !cur.Version.Less(e.Version) {
		return
	}
	pt.entries[key] = e
}

func (pt *partition) mergeAll(entries map[string]Entry) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for k, e := range entries {
		pt.mergeLocked(k, e)
	}
}

func (pt *partition) snapshot() map[string]Entry {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return maps.Clone(pt.entries)
}

// live counts the keys that hold a value (not deleted).
func (pt *partition) live() int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	n := 0
	for _, e := range pt.entries {
		if !e.Deleted {
			n++
		}
	}
	return n
}
