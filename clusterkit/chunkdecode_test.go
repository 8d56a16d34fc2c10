package clusterkit

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"testing/quick"
)

// checkLikeJSON fails unless unmarshalChunk and json.Unmarshal agree on b:
// both fail, or both succeed with the same value.
func checkLikeJSON(t *testing.T, b []byte) {
	t.Helper()
	agreesWithJSON(t, b, func(b []byte) (w wireChunk, err error) { return w, unmarshalChunk(b, &w) })
}

// agreesWithJSON fails unless decode and json.Unmarshal into a T agree on b.
func agreesWithJSON[T any](t *testing.T, b []byte, decode func([]byte) (T, error)) {
	t.Helper()
	var want T
	errWant := json.Unmarshal(b, &want)
	got, errGot := decode(b)
	if (errWant == nil) != (errGot == nil) {
		t.Fatalf("%q: error %v, json.Unmarshal says %v", b, errGot, errWant)
	}
	if errWant == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: got %#v, json.Unmarshal gives %#v", b, got, want)
	}
}

func TestUnmarshalChunkAgreesWithJSON(t *testing.T) {
	for _, s := range []string{
		`{"v":3,"p":[[1,3,0,1,2,-1],[0,0,-1]]}`,
		` { "p" : [ [ 1 , 2 ] , [ ] ] , "v" : 12 } `, `{"v":1,"p":[]}`, `{"v":1}`, `{}`, `{"p":[[]]}`,
		`{"v":-0,"p":[[-9223372036854775808,9223372036854775807]]}`,
		`{"v":1,"p":[[9223372036854775808]]}`, `{"v":1,"p":[[1.0]]}`, `{"v":1e3}`, `{"v":01}`, `{"v":-}`,
		`{"V":2,"P":[[1]]}`, `{"v":1,"v":2}`, `{"v":1,"p":[[1]],"p":[[2,3]]}`, `{"v":1,"x":{"a":[1]}}`,
		`{"v":null,"p":null}`, `{"v":1,"p":[null,[1,null]]}`, `null`, ``, `{`, `{"v":1,}`, `{"v":1,"p":[[1,]]}`,
		`{"v":1,"p":[[1][2]]}`, `{"v":1} x`, `{"v":"1"}`, `{"v":true}`, `[1]`, `{"\u0076":4}`, `{"v":1}` + "\n",
		`{"v":12345678901234567890}`, `{"v":1,"p":[[1 2]]}`, `{"v" 1}`, `{"v":1 "p":[]}`, `{}}`, `{} `,
	} {
		t.Run(s, func(t *testing.T) { checkLikeJSON(t, []byte(s)) })
	}
}

// TestUnmarshalChunkTakesTheFastPath checks that what the leader writes
// (json.Marshal of a wireChunk) is parsed by hand, with the same value.
func TestUnmarshalChunkTakesTheFastPath(t *testing.T) {
	checkFastPath(t, func(tag int64, parts [][]int64) ([]byte, error) {
		return json.Marshal(wireChunk{Tag: tag, P: parts})
	}, func(b []byte) bool { return fastChunk(b, &wireChunk{}) }, checkLikeJSON)
}

// checkFastPath checks, for values that encode (a func of random
// arguments) writes, that fast parses them and like agrees.
func checkFastPath[A, B any](t *testing.T, encode func(A, B) ([]byte, error), fast func([]byte) bool, like func(*testing.T, []byte)) {
	t.Helper()
	f := func(a A, b B) bool {
		value, err := encode(a, b)
		if err != nil {
			return false
		}
		if !fast(value) {
			t.Logf("%s: not parsed by hand", value)
			return false
		}
		like(t, value)
		return true
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeChunkErrorIsReported checks that a chunk json rejects is still
// reported by decodeChunk (and so counted as a decode error).
func TestDecodeChunkErrorIsReported(t *testing.T) {
	_, err := decodeChunk([]byte(`{"v":1,"p":[[1.5]]}`), 0, 8)
	var typeErr *json.UnmarshalTypeError
	if err == nil || !errors.As(err, &typeErr) {
		t.Fatalf("got %v, want json's type error", err)
	}
}

func FuzzUnmarshalChunk(f *testing.F) {
	for _, s := range []string{`{"v":3,"p":[[1,3,0,1,2,-1],[0,0,-1]]}`, `{"v":1,"p":[[1.0]]}`, `{"V":2}`, ` {"p":[[]],"v":0} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkLikeJSON(t, b) })
}

func BenchmarkUnmarshalChunk(b *testing.B) {
	w := wireChunk{Tag: 1234}
	for i := range chunkPartitions {
		w.P = append(w.P, []int64{int64(i + 7), 3, int64(i), int64(i + 100), int64(i + 200), -1})
	}
	value, _ := json.Marshal(w)
	for _, c := range []struct {
		name string
		fn   func([]byte, *wireChunk) error
	}{{"hand", unmarshalChunk}, {"encoding_json", func(b []byte, w *wireChunk) error { return json.Unmarshal(b, w) }}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				var got wireChunk
				if err := c.fn(value, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// checkReadyLikeJSON fails unless unmarshalReadyMap and json.Unmarshal
// into a map[int]int64 agree on b.
func checkReadyLikeJSON(t *testing.T, b []byte) {
	t.Helper()
	agreesWithJSON(t, b, unmarshalReadyMap)
}

func TestUnmarshalReadyAgreesWithJSON(t *testing.T) {
	for _, s := range []string{
		`{"1":5,"17":5,"16383":12}`, ` { "0" : -1 , "2":3 } `, `{}`, `{} `, `{}}`, `null`, `{"1":5,"1":6}`,
		`{" 1":5}`, `{"1 ":5}`, `{"+1":5}`, `{"01":5}`, `{"-0":5}`, `{"-3":5}`, `{"1":1.5}`, `{"1":null}`, `{"a":1}`,
		`{"1":5,}`, `{"1":5`, `{"1"5}`, `{"1":5"2":6}`, `{"9223372036854775808":1}`, `{"1":9223372036854775808}`, `{"\u0031":2}`,
		`[]`, ``, `{"1":"5"}`,
	} {
		t.Run(s, func(t *testing.T) { checkReadyLikeJSON(t, []byte(s)) })
	}
}

// TestUnmarshalReadyTakesTheFastPath checks that a ready record as
// readyRecord.marshal writes it is parsed by hand, with the same value.
func TestUnmarshalReadyTakesTheFastPath(t *testing.T) {
	checkFastPath(t, func(m map[int]int64, _ bool) ([]byte, error) { return readyRecord(m).marshal() },
		func(b []byte) bool { _, ok := fastReady(b); return ok }, checkReadyLikeJSON)
}

func FuzzUnmarshalReady(f *testing.F) {
	for _, s := range []string{`{"1":5,"17":5}`, `{" 1":5}`, `{"01":2}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkReadyLikeJSON(t, b) })
}

// FuzzCheckPartitionShape checks that the shape check of a chunk's
// partition fails exactly when decodePartition (every slot known) does.
func FuzzCheckPartitionShape(f *testing.F) {
	f.Add([]byte{1, 3, 0, 1, 2, 0xff})
	f.Add([]byte{1, 2, 0, 1, 3, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, raw []byte) {
		a := make([]int64, len(raw))
		for i, c := range raw {
			a[i] = int64(int8(c))
		}
		_, want := decodePartition(a, func(int64) (string, bool) { return "x", true })
		if got := checkPartitionShape(a); (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
			t.Fatalf("%v: got %v, decodePartition says %v", a, got, want)
		}
	})
}
