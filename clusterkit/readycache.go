package clusterkit

import (
	"maps"
	"sync"
	"time"
)

// rawReady is a node's ready record (ready/<id>) as this node's watch
// delivered it, not decoded: followers never read other nodes' ready
// records, only the leader's planner and a plan preview do, through a
// readyCache. value is the watcher's own copy of the value, shared, never
// modified; rev is its mod revision.
type rawReady struct {
	value []byte
	rev   int64
}

// readyCache holds the ready records of the nodes decoded, each with the
// mod revision it was decoded from, so that the leader decodes each new
// record once rather than once per round.
//
// Ownership: the follow goroutine alone writes the view, under the
// follower's lock; the leader's rounds (leaderView) and plan previews
// (PreviewPlan, any goroutine) read it under the read lock, concurrently
// with each other, so the cache cannot live in the view. It is the run's,
// guarded by its own mu, and used only after the view's lock is released
// (never the two locks at once).
type readyCache struct {
	mu      sync.Mutex
	decoded map[string]decodedReady // node → its last decoded record
}

// decodedReady is one node's record for the value of mod revision rev:
// that value decoded, or, when it was malformed, the record decoded before
// it (nil if none).
type decodedReady struct {
	rev int64
	rec readyRecord
}

// records returns the ready records of raw decoded, for reconcileInput.
// A value is decoded the first time it is seen at a new mod revision. A
// malformed one is ignored as the view ignores any unusable value: the
// node's last record decoded stands (none: the node reported nothing),
// and it is reported to d (one logged error and one count of kind
// "ready") once per revision (again only if a caller holding an older
// view decoded an older revision in between). Since only the leader and previews decode
// ready records, a malformed one is found there, on the first round or
// preview after it arrives, and not by the other nodes, which never read
// it; the last good record is the last one decoded, not necessarily the
// last one delivered. Entries of nodes absent from raw are dropped. The
// records returned are shared with the cache: read-only.
func (c *readyCache) records(raw map[string]rawReady, d decoder) map[string]readyRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.decoded == nil {
		c.decoded = make(map[string]decodedReady, len(raw))
	}
	maps.DeleteFunc(c.decoded, func(id string, _ decodedReady) bool { _, ok := raw[id]; return !ok })
	out := make(map[string]readyRecord, len(raw))
	for id, r := range raw {
		e, ok := c.decoded[id]
		if !ok || e.rev != r.rev {
			e.rev = r.rev
			if rec, err := unmarshalReady(r.value); err != nil {
				d.bad("ready", d.keys.ready(id), err)
			} else {
				e.rec = rec
			}
			c.decoded[id] = e
		}
		if e.rec != nil {
			out[id] = e.rec
		}
	}
	return out
}

// plannerInput reads what the planner needs from the view: its
// reconcileInput with the ready records decoded through the run's cache
// once the view's lock is released. more, if not nil, reads more of the
// view under the same read lock.
func (r *run) plannerInput(now time.Time, more func(v *view)) reconcileInput {
	var in reconcileInput
	var raw map[string]rawReady
	r.follower.read(func(v *view) {
		in, raw = v.reconcileInput(r.cfg, now), maps.Clone(v.ready)
		if more != nil {
			more(v)
		}
	})
	in.ready = r.readyCache.records(raw, r.follower.decoder)
	return in
}
