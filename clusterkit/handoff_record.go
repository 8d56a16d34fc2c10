package clusterkit

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/clusterkit-go/clusterkit/leases"
	"github.com/clusterkit-go/clusterkit/watcher"
)

// Each node publishes its failing handoffs as handoffs/<id>, bound to its
// lease, so that every node can report the cluster's (ClusterFailingHandoffs,
// GET /handoffs, the dashboard). The record lists only the failing
// partitions and is written by the ready writer when that list changes: a
// partition starts or stops failing, or becomes stuck. A retry that fails
// again writes nothing, so Attempts and LastError in it are as of the last
// write; an empty list deletes the key.

// maxFailingError bounds the length of a last error in the record.
const maxFailingError = 200

// failingRecord is the value of handoffs/<id>.
type failingRecord struct {
	Failing []failingEntry `json:"failing"`
}

// failingEntry is one failing handoff in a failingRecord.
type failingEntry struct {
	Partition int       `json:"p"`
	Since     time.Time `json:"since"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"err,omitempty"`
	Stuck     bool      `json:"stuck,omitempty"`
}

// unmarshalFailing decodes a failingRecord and checks it: partitions in
// [0, partitions), each once.
func unmarshalFailing(b []byte, partitions int) ([]failingEntry, error) {
	var r failingRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode failing handoffs: %w", err)
	}
	seen := make(map[int]bool, len(r.Failing))
	for _, e := range r.Failing {
		if e.Partition < 0 || e.Partition >= partitions || seen[e.Partition] {
			return nil, fmt.Errorf("failing handoffs: bad or repeated partition %d", e.Partition)
		}
		seen[e.Partition] = true
	}
	return r.Failing, nil
}

// applyFailing applies a change of handoffs/<id> to v; false if e's key
// is not one. An unusable value is reported and leaves v as it was.
func (d decoder) applyFailing(v *view, e watcher.Event) bool {
	id, ok := strings.CutPrefix(e.Key, d.keys.failingPrefix())
	if !ok {
		return false
	}
	if e.Type != watcher.Put {
		delete(v.failing, id)
	} else if f, err := unmarshalFailing(e.Value, d.partitions); err != nil {
		d.bad("handoffs", e.Key, err)
	} else {
		v.failing[id] = f
	}
	return true
}

// failingPending returns the record this node's failing handoffs call for
// (stuck: failing longer than timeout at now), and false when it is
// written already.
func (s *readyState) failingPending(now time.Time, timeout time.Duration) ([]failingEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make([]failingEntry, 0, len(s.failing))
	for _, p := range slices.Sorted(maps.Keys(s.failing)) {
		f := s.failing[p]
		msg := f.lastErr
		if len(msg) > maxFailingError {
			msg = msg[:maxFailingError]
		}
		want = append(want, failingEntry{Partition: p, Since: f.since, Attempts: f.attempts, LastError: msg,
			Stuck: now.Sub(f.since) > timeout})
	}
	if s.failingWritten == nil && len(want) == 0 {
		return nil, false // nothing on this lease, nothing to say
	}
	same := s.failingWritten != nil && slices.EqualFunc(want, s.failingWritten, func(a, b failingEntry) bool {
		return a.Partition == b.Partition && a.Since.Equal(b.Since) && a.Stuck == b.Stuck
	})
	return want, !same
}

// wroteFailing records that want is written on the current lease.
func (s *readyState) wroteFailing(want []failingEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if want == nil {
		want = []failingEntry{}
	}
	s.failingWritten = want
}

// writeFailing writes want as this node's failing-handoffs record on
// reg's lease (an empty list deletes it).
func (r *run) writeFailing(reg *leases.Registration, want []failingEntry) error {
	var b []byte
	if len(want) > 0 {
		var err error
		if b, err = json.Marshal(failingRecord{Failing: want}); err != nil {
			return err
		}
	}
	return r.writeOnLease(reg, r.ck.keys.failing(r.ck.opts.NodeID), b)
}

// ClusterFailingHandoffs returns the failing handoffs of every node, by
// partition then node: this node's as FailingHandoffs reports them, the
// others' as their records in etcd say (Attempts and LastError as of the
// record's last write, Stuck by the receiving node's HandoffTimeout). Any
// node's CancelHandoff gives one up. Safe for concurrent use; nil before
// Start.
func (ck *ClusterKit) ClusterFailingHandoffs() []FailingHandoff {
	r := ck.active.Load()
	if r == nil {
		return nil
	}
	out := ck.FailingHandoffs()
	me := ck.opts.NodeID
	r.follower.read(func(v *view) {
		for id, fs := range v.failing {
			if id == me {
				continue
			}
			for _, f := range fs {
				out = append(out, FailingHandoff{Partition: f.Partition, Node: id, Since: f.Since, Attempts: f.Attempts,
					LastError: f.LastError, Stuck: f.Stuck})
			}
		}
	})
	slices.SortFunc(out, func(a, b FailingHandoff) int {
		if c := a.Partition - b.Partition; c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	return out
}
