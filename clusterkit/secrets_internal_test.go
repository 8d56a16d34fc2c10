package clusterkit

import (
	"testing"
	"time"
)

func TestRotatedRecord(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	a, b, c := hashSecret("a"), hashSecret("b"), hashSecret("c")
	first := rotated(nil, a, b, now, time.Hour)
	for _, tc := range []struct {
		name string
		rec  secretsRecord
		hash string
		at   time.Time
		want bool
	}{
		{"new secret", first, b, now, true},
		{"replaced within window", first, a, now.Add(59 * time.Minute), true},
		{"replaced after window", first, a, now.Add(time.Hour), false},
		{"never a secret", first, c, now, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rec.accepts(tc.hash, tc.at); got != tc.want {
				t.Fatalf("accepts = %v, want %v", got, tc.want)
			}
		})
	}
	second := rotated(&first, a, c, now.Add(2*time.Hour), time.Hour)
	if len(second.Previous) != 1 || second.Previous[0].Hash != b || second.Current != c {
		t.Fatalf("second rotation = %+v, want current c, previous only b (a expired)", second)
	}
	rec := &first
	for i := range 20 {
		next := rotated(rec, a, hashSecret(string(rune('d'+i))), now, time.Hour)
		rec = &next
	}
	if len(rec.Previous) != maxPreviousSecrets {
		t.Fatalf("%d previous secrets kept, want at most %d", len(rec.Previous), maxPreviousSecrets)
	}
}
