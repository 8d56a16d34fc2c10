package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/leases"
)

// readyState is this node's handoff progress: the partitions it holds the
// data of (published as its ready record, bound to its lease) and those
// whose handoff is failing (published as its failing-handoffs record,
// handoff_record.go). The handoffs update it; the ready writer publishes
// it. Safe for concurrent use.
type readyState struct {
	mu      sync.Mutex
	set     map[int]int64 // partition → since: what the record should say
	written map[int]int64 // what the writer last wrote on the current lease; nil: nothing yet
	failing map[int]*failingHandoff
	// failingWritten is the failing-handoffs record last written on the
	// current lease; nil: nothing yet.
	failingWritten []failingEntry
	wake           chan struct{}
}

// failingHandoff is a handoff of this node whose last attempt failed.
type failingHandoff struct {
	since    time.Time // first failure since the handoff last succeeded
	attempts int
	lastErr  string
}

func newReadyState() *readyState {
	return &readyState{set: map[int]int64{}, failing: map[int]*failingHandoff{}, wake: make(chan struct{}, 1)}
}

// markReady records that this node holds partition p's data (incoming
// since version since).
func (s *readyState) markReady(p int, since int64) {
	s.mu.Lock()
	s.set[p] = since
	s.mu.Unlock()
	s.wakeUp()
}

// keepReady drops the entries that are no longer incoming (want).
func (s *readyState) keepReady(want map[int]int64) {
	s.mu.Lock()
	changed := false
	for p, since := range s.set {
		if want[p] != since {
			delete(s.set, p)
			changed = true
		}
	}
	s.mu.Unlock()
	if changed {
		s.wakeUp()
	}
}

// setFailing records whether partition p's handoff is failing.
func (s *readyState) setFailing(p int, failing bool) {
	s.mu.Lock()
	if failing {
		if s.failing[p] == nil {
			s.failing[p] = &failingHandoff{since: time.Now()}
		}
	} else {
		delete(s.failing, p)
	}
	s.mu.Unlock()
	s.wakeUp()
}

// failed records a failed attempt of partition p's handoff.
func (s *readyState) failed(p int, err error) {
	s.mu.Lock()
	f := s.failing[p]
	if f == nil {
		f = &failingHandoff{since: time.Now()}
		s.failing[p] = f
	}
	f.attempts++
	f.lastErr = err.Error()
	s.mu.Unlock()
	s.wakeUp() // the writer writes only if the record's list changed
}

// failingSnapshot returns a copy of the failing handoffs by partition.
func (s *readyState) failingSnapshot() map[int]failingHandoff {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]failingHandoff, len(s.failing))
	for p, f := range s.failing {
		out[p] = *f
	}
	return out
}

func (s *readyState) failingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.failing)
}

// newLease forgets what was written: the old records went with the old
// lease.
func (s *readyState) newLease() {
	s.mu.Lock()
	s.written, s.failingWritten = nil, nil
	s.mu.Unlock()
	s.wakeUp()
}

// pending returns what the record should say, and false when that is
// written already. Entries that only went away are not written: the
// leader accepts an entry only while its since matches the map's, so a
// stale one is harmless, and dropping it would cost every watcher a write
// per handoff (the record goes with the lease in the end).
func (s *readyState) pending() (map[int]int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil && subset(s.set, s.written) {
		return nil, false
	}
	return maps.Clone(s.set), true
}

// subset reports whether every entry of a is in b.
func subset(a, b map[int]int64) bool {
	for p, since := range a {
		if v, ok := b[p]; !ok || v != since {
			return false
		}
	}
	return true
}

func (s *readyState) wrote(want map[int]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if want == nil {
		want = map[int]int64{}
	}
	s.written = want
}

func (s *readyState) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// readyWriter publishes this node's ready record and failing-handoffs
// record (bound to its lease), coalescing bursts of changes into one
// write each, until the run ends.
func (r *run) readyWriter() {
	b := newBackoff(200*time.Millisecond, 2*time.Second)
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.ready.wake:
		}
		for {
			reg := r.reg.Load()
			if reg == nil {
				break
			}
			wrote, err := r.flushRecords(reg)
			if err != nil {
				if r.ctx.Err() != nil {
					return
				}
				r.ck.metrics.etcdErrors.WithLabelValues("ready").Inc()
				r.ck.log.Warn("write ready record failed; retrying", zapErr(err))
				if !b.wait(r.ctx) {
					return
				}
				continue
			}
			b.reset()
			if !wrote {
				break
			}
		}
	}
}

// flushRecords writes the ready record, else the failing-handoffs record,
// if it is not written yet on reg's lease; false when both are.
func (r *run) flushRecords(reg *leases.Registration) (bool, error) {
	if want, ok := r.ready.pending(); ok {
		if err := r.writeReady(reg, want); err != nil {
			return false, err
		}
		if r.reg.Load() == reg { // else written on a lease replaced meanwhile: write again
			r.ready.wrote(want)
		}
		return true, nil
	}
	if want, ok := r.ready.failingPending(time.Now(), r.ck.opts.HandoffTimeout); ok {
		if err := r.writeFailing(reg, want); err != nil {
			return false, err
		}
		if r.reg.Load() == reg {
			r.ready.wroteFailing(want)
		}
		return true, nil
	}
	return false, nil
}

// writeReady writes want as this node's ready record on reg's lease (an
// empty set deletes it).
func (r *run) writeReady(reg *leases.Registration, want map[int]int64) error {
	var b []byte
	if len(want) > 0 {
		var err error
		if b, err = readyRecord(want).marshal(); err != nil {
			return err
		}
	}
	return r.writeOnLease(reg, r.ck.keys.ready(r.ck.opts.NodeID), b)
}

// errRecordChanging: one of this node's records changed under each of its
// conditional writes in a row (writeOnLease); the ready writer retries.
var errRecordChanging = errors.New("record keeps changing")

// ownRecords is the mod revision of each of this node's records (ready,
// failing handoffs) as the ready writer last wrote or read it (0: absent),
// and the lease those writes were on.
type ownRecords struct {
	lease clientv3.LeaseID
	revs  map[string]int64
}

// writeOnLease puts value at key on reg's lease, or deletes key when value
// is empty. The write holds only if key is still at the mod revision this
// node last wrote or read (records): etcd under load may still apply a
// write whose request timed out, after a newer one, and an unconditional
// write would then replace the newer record while this node believed it
// written (its handoffs would never complete). A record found changed is
// read and written again. Only the ready writer goroutine calls it.
func (r *run) writeOnLease(reg *leases.Registration, key string, value []byte) error {
	ctx, cancel := context.WithTimeout(r.ctx, requestTimeout)
	defer cancel()
	write := clientv3.OpDelete(key)
	if len(value) > 0 {
		write = clientv3.OpPut(key, string(value), clientv3.WithLease(reg.LeaseID()))
	}
	if rec := &r.records; rec.revs == nil || rec.lease != reg.LeaseID() {
		// A new lease: the records on the old one went with it.
		rec.lease, rec.revs = reg.LeaseID(), map[string]int64{}
	}
	for range 3 {
		resp, err := r.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", r.records.revs[key])).
			Then(write).Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
		if err != nil {
			return err
		}
		rev := int64(0) // deleted, or found absent
		switch {
		case !resp.Succeeded:
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				rev = kvs[0].ModRevision
			}
		case len(value) > 0:
			rev = resp.Header.Revision
		}
		r.records.revs[key] = rev
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("record %s: %w", key, errRecordChanging)
}

// logReady is the log line of a partition becoming ready.
func logReady(log *zap.Logger, p int, since int64) {
	log.Info("partition ready", zap.String("partition", PartitionID(p)), zap.Int64("since", since))
}
