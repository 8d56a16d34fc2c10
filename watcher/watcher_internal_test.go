package watcher

import (
	"errors"
	"strings"
	"testing"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

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

// TestWithServerVersion: a version given by the caller decides whether
// progress notifications are trusted (no Status request is needed); a
// malformed one is refused.
func TestWithServerVersion(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	for v, want := range map[string]bool{"3.4.23": false, "3.5.8": true, "3.7.3": true} {
		w := startWatch(t, cli, "/p/", WithServerVersion(v))
		if w.trustProgress != want {
			t.Errorf("WithServerVersion(%q): trustProgress = %v, want %v", v, w.trustProgress, want)
		}
	}
	_, err := Watch(ctxT(t), cli, "/p/", WithServerVersion("v3"))
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "WithServerVersion") {
		t.Fatalf("Watch with WithServerVersion(\"v3\"): %v, want ErrInvalidArgument naming the option", err)
	}
}
