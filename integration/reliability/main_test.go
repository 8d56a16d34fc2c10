package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerate renders a run in which one scenario passed with a summary
// line, one failed and the others did not run.
func TestGenerate(t *testing.T) {
	run := `{"Time":"2026-11-29T05:00:00Z","Action":"run","Package":"github.com/clusterkit-go/clusterkit/integration","Test":"TestFrozenVoter"}
{"Time":"2026-11-29T05:00:01Z","Action":"output","Package":"github.com/clusterkit-go/clusterkit/integration","Test":"TestFrozenVoter","Output":"    fault_freeze_test.go:61: RELIABILITY {\"leave_seen\":2.41,\"settled_after_thaw\":{\"median\":0.5,\"min\":0.4,\"max\":0.9,\"n\":3},\"no_source\":0}\n"}
{"Time":"2026-11-29T05:00:02Z","Action":"pass","Package":"github.com/clusterkit-go/clusterkit/integration","Test":"TestFrozenVoter","Elapsed":12.3}
{"Time":"2026-11-29T05:00:03Z","Action":"run","Package":"github.com/clusterkit-go/clusterkit/integration/linearizability","Test":"TestSoak"}
{"Time":"2026-11-29T05:00:04Z","Action":"fail","Package":"github.com/clusterkit-go/clusterkit/integration/linearizability","Test":"TestSoak","Elapsed":70}
not json
`
	path := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(path, []byte(run), 0o600); err != nil {
		t.Fatal(err)
	}
	runs := map[string]*outcome{}
	if err := read(path, runs); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	write(&b, runs)
	out := b.String()
	for _, want := range []string{
		"| `TestFrozenVoter` |",
		"| pass (12 s) | leave seen: 2.41; no source: 0; settled after thaw: 0.5 (0.4–0.9, n=3) |",
		"| `TestSoak` |",
		"| **fail** (70 s) | — |",
		"| `TestManyNodesAtOnce` |",
		"not in this run",
		"Run of 2026-11-29 05:00 UTC.",
		"`go test -race -count=1 -run '^TestFrozenVoter$' -v ./integration/`",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
