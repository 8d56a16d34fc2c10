package clusterkit

import (
	"maps"
	"reflect"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/clusterkit-go/clusterkit/watcher"
)

// TestReadyCacheDecodesEachRevisionOnce feeds records the raw ready
// records of successive views: a value is decoded once per mod revision
// (the same record comes back, a malformed one is reported once), a
// malformed value is ignored (the node's last good record stands, none
// for a node without one) until a good value replaces it, and a deleted
// node's record is dropped.
func TestReadyCacheDecodesEachRevisionOnce(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	counted := map[string]int{}
	d := decoder{keys: newKeys("c"), partitions: 16, log: zap.New(core), decodeErrors: func(kind string) { counted[kind]++ }}
	var c readyCache

	raw := map[string]rawReady{
		"a": {value: []byte(`{"1":3,"7":4}`), rev: 10},
		"b": {value: []byte(`{"2":`), rev: 11},
	}
	first := c.records(raw, d)
	if want := (map[string]readyRecord{"a": {1: 3, 7: 4}}); !reflect.DeepEqual(first, want) {
		t.Fatalf("records %v, want %v", first, want)
	}
	if counted["ready"] != 1 || logs.Len() != 1 {
		t.Fatalf("malformed record: %d counts, %d logged errors; want 1, 1", counted["ready"], logs.Len())
	}
	if key := logs.All()[0].ContextMap()["key"]; key != d.keys.ready("b") {
		t.Fatalf("logged key %v, want %s", key, d.keys.ready("b"))
	}

	// Rounds over the same revisions decode nothing again.
	for range 3 {
		again := c.records(maps.Clone(raw), d)
		if reflect.ValueOf(again["a"]).UnsafePointer() != reflect.ValueOf(first["a"]).UnsafePointer() {
			t.Fatal("a's record was decoded again at the same revision")
		}
		if _, ok := again["b"]; ok || counted["ready"] != 1 || logs.Len() != 1 {
			t.Fatalf("b: in records %v, %d counts, %d logged errors; want absent, 1, 1", ok, counted["ready"], logs.Len())
		}
	}

	// A good value replaces the malformed one; a's new value is decoded.
	raw["b"] = rawReady{value: []byte(`{"2":5}`), rev: 12}
	raw["a"] = rawReady{value: []byte(`{"1":3}`), rev: 13}
	got := c.records(raw, d)
	if want := (map[string]readyRecord{"a": {1: 3}, "b": {2: 5}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	if counted["ready"] != 1 {
		t.Fatalf("%d counts after the good value, want 1", counted["ready"])
	}

	// A malformed value after a good one: the good one stands.
	raw["a"] = rawReady{value: []byte(`{"1":`), rev: 14}
	got = c.records(raw, d)
	if want := (map[string]readyRecord{"a": {1: 3}, "b": {2: 5}}); !reflect.DeepEqual(got, want) || counted["ready"] != 2 {
		t.Fatalf("after a malformed value of a: records %v, %d counts; want %v, 2", got, counted["ready"], want)
	}

	// A deleted record leaves the cache; re-created at a later revision it
	// is decoded anew.
	delete(raw, "a")
	if got := c.records(raw, d); len(got) != 1 || len(c.decoded) != 1 {
		t.Fatalf("after a's delete: records %v, cache %v", got, c.decoded)
	}
	raw["a"] = rawReady{value: []byte(`{"4":6}`), rev: 15}
	if got := c.records(raw, d); !reflect.DeepEqual(got["a"], readyRecord{4: 6}) {
		t.Fatalf("a re-created: %v", got["a"])
	}
}

// TestViewKeepsReadyRecordsUndecoded applies ready records, one of them
// malformed, to a view: the view keeps each value as delivered (the
// watcher's slice, not a copy) with its mod revision and reports nothing;
// a delete removes the record.
func TestViewKeepsReadyRecordsUndecoded(t *testing.T) {
	counted := 0
	d := decoder{keys: newKeys("c"), partitions: 16, log: zap.NewNop(), decodeErrors: func(string) { counted++ }}
	v := newView(16)
	good, bad := []byte(`{"1":2}`), []byte(`not json`)
	put := func(id string, b []byte, rev int64) watcher.Event {
		return watcher.Event{Type: watcher.Put, Key: d.keys.ready(id), Value: b, ModRevision: rev, CreateRevision: rev}
	}
	d.applyOther(v, put("a", good, 5))
	d.applyOther(v, put("b", bad, 6))
	if counted != 0 || v.readyRev != 6 || len(v.ready) != 2 {
		t.Fatalf("counted %d, readyRev %d, ready %v", counted, v.readyRev, v.ready)
	}
	if r := v.ready["a"]; &r.value[0] != &good[0] || r.rev != 5 {
		t.Fatalf("a: %+v is not the delivered value at revision 5", r)
	}
	d.applyOther(v, watcher.Event{Type: watcher.Delete, Key: d.keys.ready("b"), PrevValue: bad, ModRevision: 7})
	if _, ok := v.ready["b"]; ok || v.readyRev != 7 {
		t.Fatalf("after the delete: ready %v, readyRev %d", v.ready, v.readyRev)
	}
}
