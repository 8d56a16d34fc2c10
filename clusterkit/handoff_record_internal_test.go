package clusterkit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestFailingRecordIsWrittenOncePerChange drives readyState as the
// handoffs and the ready writer do: a record is pending when a partition
// starts failing, becomes stuck or recovers, never for a retry that fails
// again, and not at all on a new lease with nothing failing.
func TestFailingRecordIsWrittenOncePerChange(t *testing.T) {
	s := newReadyState()
	const timeout = time.Minute
	now := time.Now()
	pending := func(at time.Time) ([]failingEntry, bool) { return s.failingPending(at, timeout) }
	if _, ok := pending(now); ok {
		t.Fatal("pending with nothing failing and nothing written")
	}
	s.failed(3, errors.New(strings.Repeat("x", 1000)))
	want, ok := pending(now)
	if !ok || len(want) != 1 || want[0].Partition != 3 || want[0].Attempts != 1 || len(want[0].LastError) != maxFailingError || want[0].Stuck {
		t.Fatalf("after the first failure: %+v, %v", want, ok)
	}
	s.wroteFailing(want)
	for range 5 {
		s.failed(3, errors.New("again"))
	}
	if got, ok := pending(now); ok {
		t.Fatalf("pending after retries that failed again: %+v", got)
	}
	got, ok := pending(now.Add(2 * timeout))
	if !ok || !got[0].Stuck || got[0].Attempts != 6 || got[0].LastError != "again" {
		t.Fatalf("after the timeout: %+v, %v, want it stuck with the latest attempts and error", got, ok)
	}
	s.wroteFailing(got)
	s.setFailing(3, false)
	if got, ok := pending(now); !ok || len(got) != 0 {
		t.Fatalf("after the recovery: %+v, %v, want an empty record (delete)", got, ok)
	}
	s.wroteFailing(nil)
	if _, ok := pending(now); ok {
		t.Fatal("pending once the deletion is written")
	}
	s.failed(5, errors.New("e"))
	s.newLease()
	if _, ok := pending(now); !ok {
		t.Fatal("not pending on a new lease with a failing handoff")
	}
	s.setFailing(5, false)
	if _, ok := pending(now); ok {
		t.Fatal("pending on a new lease with nothing failing")
	}
}

func TestUnmarshalFailingChecksPartitions(t *testing.T) {
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{`{"failing":[{"p":0,"since":"2026-01-01T00:00:00Z","attempts":2,"err":"e","stuck":true},{"p":15}]}`, true},
		{`{"failing":[]}`, true},
		{`{"failing":[{"p":16}]}`, false},
		{`{"failing":[{"p":-1}]}`, false},
		{`{"failing":[{"p":2},{"p":2}]}`, false},
		{`{"failing":`, false},
		{`[1]`, false},
	} {
		got, err := unmarshalFailing([]byte(tc.value), 16)
		if (err == nil) != tc.ok {
			t.Errorf("unmarshalFailing(%s) = %+v, %v; want ok %v", tc.value, got, err, tc.ok)
		}
	}
}
