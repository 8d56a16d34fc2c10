package watcher

import "testing"

func TestProgressFixedIn(t *testing.T) {
	for v, want := range map[string]bool{
		"3.4.23": false, "3.4.24": true, "3.5.7": false, "3.5.8": true, "3.6.0": true, "3.7.3": true,
		"3.3.27": false, "4.0.0": true, "": false, "garbage": false,
	} {
		if got := progressFixedIn(v); got != want {
			t.Errorf("progressFixedIn(%q) = %v, want %v", v, got, want)
		}
	}
}
