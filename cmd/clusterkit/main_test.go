package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/clusterkit-go/clusterkit/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// result is what one run of the CLI gave.
type result struct {
	code           int
	stdout, stderr string
}

// syncBuffer is a bytes.Buffer that a running watch writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cli runs the command tree in-process with env as the environment.
func cli(ctx context.Context, env map[string]string, args ...string) result {
	var stdout, stderr syncBuffer
	code := run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%sstderr:\n%s", r.code, r.stdout, r.stderr)
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestUsageErrors(t *testing.T) {
	node := map[string]string{envNode: closedAddr(t)}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in stderr
	}{
		{"unknown command", node, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", node, []string{"status", "--frob"}, "unknown flag: --frob"},
		{"extra argument", node, []string{"status", "now"}, "status takes no arguments, got 1"},
		{"locate without key", node, []string{"locate"}, "locate takes KEY, got 0 argument(s)"},
		{"remove without node", node, []string{"remove"}, "remove takes NODE, got 0 argument(s)"},
		{"partitions with two nodes", node, []string{"partitions", "a", "b"}, "at most one argument"},
		{"bad output", node, []string{"members", "-o", "yaml"}, `invalid --output "yaml": use table or json`},
		{"no node", nil, []string{"status"}, "pass --node host:port (a node's HTTPAddr) or set CLUSTERKIT_NODE"},
		{"bad node URL", nil, []string{"status", "--node", "ftp://x:1"}, `invalid --node "ftp://x:1"`},
		{"bad timeout", node, []string{"status", "--timeout", "0s"}, "invalid --timeout 0s"},
		{"bad interval", node, []string{"watch", "--interval", "1ms"}, "invalid --interval 1ms: at least 50ms"},
		{"rebalance without token", node, []string{"rebalance"}, "needs the cluster token: pass --token or set CLUSTERKIT_TOKEN"},
		{"remove without token", node, []string{"remove", "node-2"}, "needs the cluster token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(context.Background(), tc.env, tc.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "--help' for usage") {
				t.Fatalf("clusterkit %s: got %v\nwant exit 2 and stderr containing %q and the --help hint", strings.Join(tc.args, " "), r, tc.want)
			}
		})
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"partitions", "--help"}} {
		r := cli(context.Background(), nil, args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "Usage:") {
			t.Fatalf("clusterkit %v: got %v, want exit 0 and the usage", args, r)
		}
	}
}

func TestNodeFailures(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>not ClusterKit</html>"))
	}))
	defer html.Close()
	closed := closedAddr(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing listens", []string{"status", "--node", closed}, "cannot reach the node at http://" + closed},
		{"not ClusterKit", []string{"members", "--node", html.URL}, "is not ClusterKit's JSON"},
		{"admin, nothing listens", []string{"rebalance", "--node", closed, "--token", "t"}, "check that --node (or CLUSTERKIT_NODE)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(context.Background(), nil, tc.args...)
			if r.code != exitFailed || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "for usage") {
				t.Fatalf("clusterkit %s: got %v\nwant exit 1 and stderr containing %q, without the usage hint", strings.Join(tc.args, " "), r, tc.want)
			}
		})
	}
}
