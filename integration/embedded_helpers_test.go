package integration

import (
	"testing"
	"time"
)

// Helpers of the embedded-etcd fault tests and benchmarks.

// lastRecord returns the last record of kind that node n made.
func (n *nodeProc) lastRecord(kind string) (record, bool) {
	n.log.mu.Lock()
	defer n.log.mu.Unlock()
	for i := len(n.log.recs) - 1; i >= 0; i-- {
		if r := n.log.recs[i]; r.Self == n.id && r.Kind == kind {
			return r, true
		}
	}
	return record{}, false
}

// stopTook returns how long the node's last Stop took, as it measured it.
func (n *nodeProc) stopTook() time.Duration {
	r, ok := n.lastRecord("stopped")
	if !ok {
		return 0
	}
	return time.Duration(r.Took * float64(time.Second))
}

// gracefulStop SIGTERMs n and waits for its exit, failing the test unless
// it exits 0 (Stop returned nil).
func (n *nodeProc) gracefulStop(t testing.TB) {
	t.Helper()
	n.term()
	n.waitCleanExit(t)
}

// waitCleanExit waits for n's exit, failing the test unless it is 0.
func (n *nodeProc) waitCleanExit(t testing.TB) {
	t.Helper()
	if code := n.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("graceful stop of %s exited %d: Stop: %s\n%s", n.id, code, n.stopErr(), n.stderrTail())
	}
}
