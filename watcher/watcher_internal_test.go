package watcher

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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

// TestPagedReads runs the tests that read the prefix (initially, and again
// after a compaction) with pages of 2 keys, so every read takes several.
func TestPagedReads(t *testing.T) {
	old := readPageKeys
	readPageKeys = 2
	t.Cleanup(func() { readPageKeys = old })
	t.Run("initial", TestInitialBatch)
	t.Run("resync", TestCompactionWhileCutOff)
	t.Run("without prev values", TestWithoutPrevValues)
}

// TestHealthyWatchIsKept: a watch that hears from etcd stays on its first
// attempt (the bound on its creation once cut every watch after 2 s, and
// each new attempt could leave a stream open in the etcd client).
func TestHealthyWatchIsKept(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	w := startWatch(t, cli, "/p/", WithProgressInterval(time.Second))
	<-w.Batches()
	time.Sleep(7 * time.Second)
	// Three and a half silence bounds (2 s): 4 attempts before the fix; 1
	// after, 2 if this machine once starved the watch of progress for 2 s.
	if n := w.Stats().Watches; n > 2 {
		t.Fatalf("%d watch attempts in 7 s of a healthy watch, want 1 (2 at most)", n)
	}
}

// TestSilenceBoundGrowsWhileEtcdStaysSilent: attempts that etcd leaves
// silent soon after they begin double the next attempt's bound, up to 16
// times the base; a silence after a long watch, or an attempt that ends
// otherwise, brings it back to the base.
func TestSilenceBoundGrowsWhileEtcdStaysSilent(t *testing.T) {
	w := &Watcher{cfg: defaultConfig()}
	base := silenceBound(w.cfg.progressInterval) // 2 s
	var got []time.Duration
	for _, err := range []error{errSilent, errNotCreated, errSilent, errSilent, errSilent, errSilent} {
		w.noteAttempt(err, base)
		got = append(got, w.silenceBound())
	}
	want := []time.Duration{2 * base, 4 * base, 8 * base, 16 * base, 16 * base, 16 * base}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bounds after silent attempts: %v, want %v", got, want)
	}
	w.noteAttempt(errSilent, 10*base) // a member frozen after a long watch
	if b := w.silenceBound(); b != base {
		t.Fatalf("bound after a silence that ended a long watch: %v, want %v", b, base)
	}
	w.noteAttempt(errSilent, base)
	w.noteAttempt(errors.New("watch canceled"), base)
	if b := w.silenceBound(); b != base {
		t.Fatalf("bound after an attempt that ended otherwise: %v, want %v", b, base)
	}
}
