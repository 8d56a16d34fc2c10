package watcher

import (
	"fmt"
	"testing"
)

func TestNetEvents(t *testing.T) {
	kvAt := func(v string, create, mod int64) kv {
		return kv{value: []byte(v), create: create, mod: mod, version: mod - create + 1}
	}
	tests := []struct {
		name       string
		old, fresh map[string]kv
		want       []string
	}{
		{name: "both empty", want: nil},
		{
			name:  "unchanged keys give nothing",
			old:   map[string]kv{"a": kvAt("1", 2, 3), "b": kvAt("1", 4, 4)},
			fresh: map[string]kv{"a": kvAt("1", 2, 3), "b": kvAt("1", 4, 4)},
			want:  nil,
		},
		{
			name:  "new, changed, gone",
			old:   map[string]kv{"a": kvAt("1", 2, 2), "b": kvAt("1", 3, 3), "c": kvAt("1", 4, 4)},
			fresh: map[string]kv{"a": kvAt("1", 2, 2), "b": kvAt("2", 3, 9), "d": kvAt("1", 8, 8)},
			want:  []string{"DELETE c prev=1 mod=10", "PUT d=1 prev=<nil> mod=8", "PUT b=2 prev=1 mod=9"},
		},
		{
			name:  "same value rewritten is a change",
			old:   map[string]kv{"a": kvAt("1", 2, 2)},
			fresh: map[string]kv{"a": kvAt("1", 2, 5)},
			want:  []string{"PUT a=1 prev=1 mod=5"},
		},
		{
			name:  "re-created key: delete the old incarnation, put the new",
			old:   map[string]kv{"a": kvAt("1", 2, 2)},
			fresh: map[string]kv{"a": kvAt("2", 7, 7)},
			want:  []string{"DELETE a prev=1 mod=10", "PUT a=2 prev=<nil> mod=7"},
		},
		{
			name:  "deletes sorted by key, puts by revision",
			old:   map[string]kv{"z": kvAt("1", 2, 2), "y": kvAt("1", 3, 3)},
			fresh: map[string]kv{"a": kvAt("1", 9, 9), "b": kvAt("1", 5, 5), "c": kvAt("1", 5, 5)},
			want:  []string{"DELETE y prev=1 mod=10", "DELETE z prev=1 mod=10", "PUT b=1 prev=<nil> mod=5", "PUT c=1 prev=<nil> mod=5", "PUT a=1 prev=<nil> mod=9"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range netEvents(changesBetween(tt.old, tt.fresh), 10) {
				prev := "<nil>"
				if e.PrevValue != nil {
					prev = string(e.PrevValue)
				}
				s := fmt.Sprintf("%s %s prev=%s mod=%d", e.Type, e.Key, prev, e.ModRevision)
				if e.Type == Put {
					s = fmt.Sprintf("%s %s=%s prev=%s mod=%d", e.Type, e.Key, e.Value, prev, e.ModRevision)
				}
				got = append(got, s)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("netEvents:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestEventTypeString(t *testing.T) {
	for _, tt := range []struct {
		typ  EventType
		want string
	}{{Put, "PUT"}, {Delete, "DELETE"}, {0, "EventType(0)"}} {
		if got := tt.typ.String(); got != tt.want {
			t.Errorf("EventType(%d).String() = %q, want %q", int(tt.typ), got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 50e6, max: 2e9} // 50ms .. 2s
	caps := []int64{50e6, 100e6, 200e6, 400e6, 800e6, 1600e6, 2e9, 2e9}
	for i, c := range caps {
		d := int64(b.next())
		if d < c/2 || d > c {
			t.Fatalf("wait %d = %d ns, want in [%d, %d]", i, d, c/2, c)
		}
	}
	b.reset()
	if d := int64(b.next()); d < 25e6 || d > 50e6 {
		t.Fatalf("wait after reset = %d ns, want in [25ms, 50ms]", d)
	}
}
