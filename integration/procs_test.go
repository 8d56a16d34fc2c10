package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/internal/freeport"
	"github.com/clusterkit-go/clusterkit/internal/pki"
	"github.com/clusterkit-go/clusterkit/internal/testbin"
)

// This file runs ClusterKit nodes as real child processes (the cknode
// command) for the fault tests: each node is a process a test can SIGKILL,
// SIGSTOP/SIGCONT, SIGTERM and restart with its original options, and
// everything it observed comes back as records (see cknode's record type).

// freePort returns a loopback address whose port was free a moment ago,
// outside the kernel's ephemeral range (see internal/freeport).
func freePort(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

var (
	cknodeOnce sync.Once
	cknodeBin  string
	cknodeErr  error
	cknodeDir  string
)

// cknodePath builds cknode once per test binary (into a temp dir that
// TestMain removes) and returns its path.
func cknodePath(t testing.TB) string {
	t.Helper()
	cknodeOnce.Do(func() {
		cknodeBin, cknodeDir, cknodeErr = testbin.Build("./cknode", "cknode", "-race")
	})
	if cknodeErr != nil {
		t.Fatal(cknodeErr)
	}
	return cknodeBin
}

// record mirrors cknode's output line.
type record struct {
	T        int64    `json:"t"`
	Self     string   `json:"self"`
	Kind     string   `json:"kind"`
	P        int      `json:"p"`
	Epoch    uint64   `json:"epoch"`
	Version  int64    `json:"version"`
	Primary  string   `json:"primary"`
	Serving  []string `json:"serving"`
	Incoming []string `json:"incoming"`
	Node     string   `json:"node"`
	Inc      int64    `json:"inc"`
	Reason   string   `json:"reason"`
	From     []string `json:"from"`
	NoSource bool     `json:"nosource"`
	Promoted bool     `json:"promoted"`
	CatchUp  bool     `json:"catchup"`
	Same     bool     `json:"same"`
	Kept     bool     `json:"kept"`
	Offline  float64  `json:"offline"`
	Before   []string `json:"before"`
	RB       int64    `json:"rb"`
	Moves    int      `json:"moves"`
	Status   string   `json:"status"`
	Err      string   `json:"err"`
	Took     float64  `json:"took"`
	Token    string   `json:"token"`
}

func (r record) at() time.Time { return time.Unix(0, r.T) }

// nodeProc is one node process, restartable with the same arguments.
type nodeProc struct {
	t    testing.TB
	id   string
	http string
	etcd string // its embedded etcd client address ("" in external mode)
	dir  string
	// token is the JoinToken of its first successful start ("" without
	// cluster TLS); read it after waitStarted.
	token string
	args  []string
	log   *recordLog

	cmd     *exec.Cmd
	started chan string // the Err of this run's "started" record
	exited  chan struct{}
	exit    int // exit code of the last run, valid once exited is closed
	frozen  bool
	stderr  *os.File
}

// recordLog collects the records of every node process of a test, in the
// order they arrived. Safe for concurrent use.
type recordLog struct {
	mu   sync.Mutex
	recs []record
}

func (l *recordLog) add(r record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
}

// since returns the records made at or after t.
func (l *recordLog) since(t time.Time) []record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []record
	for _, r := range l.recs {
		if !r.at().Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// procCluster is a set of node processes that form one cluster: on
// embedded etcd (the first node bootstraps, the others join it) or on the
// external etcd endpoints given.
type procCluster struct {
	t     testing.TB
	bin   string
	dir   string // the nodes' dirs; removed after killAll
	log   *recordLog
	nodes []*nodeProc
	flags []string // extra cknode flags for every node
	etcd  string   // external endpoints; "" for embedded
}

func newProcCluster(t testing.TB, flags ...string) *procCluster {
	// The temp dir is made before killAll is registered, so that the
	// clean-ups (last registered, first run) kill the processes before
	// their dirs are removed: a running node writes into its dir.
	c := &procCluster{t: t, bin: cknodePath(t), dir: t.TempDir(), log: &recordLog{}, flags: flags}
	t.Cleanup(c.killAll)
	return c
}

// add starts a new node and waits until its Start returned nil.
func (c *procCluster) add(id string) *nodeProc {
	c.t.Helper()
	n := c.spawn(id)
	n.waitStarted()
	return n
}

// spawn starts a new node process without waiting for its Start; extra
// flags come last (a repeated flag's last value wins).
func (c *procCluster) spawn(id string, extra ...string) *nodeProc {
	c.t.Helper()
	dir, err := os.MkdirTemp(c.dir, id)
	if err != nil {
		c.t.Fatal(err)
	}
	n := &nodeProc{t: c.t, id: id, http: freePort(c.t), dir: dir, log: c.log}
	n.args = append([]string{"-id", id, "-http", n.http, "-data", filepath.Join(n.dir, "data"),
		"-log", filepath.Join(n.dir, "node.log")}, c.flags...)
	if c.etcd != "" {
		n.args = append(n.args, "-etcd", c.etcd)
	} else {
		n.etcd = freePort(c.t)
		n.args = append(n.args, "-etcd-client", n.etcd, "-etcd-peer", freePort(c.t))
		if len(c.nodes) > 0 {
			n.args = append(n.args, "-join", c.nodes[0].http)
			if tok := c.nodes[0].token; tok != "" {
				n.args = append(n.args, "-token", tok) // checks the first node's CA
			}
		}
	}
	n.args = append(n.args, extra...)
	c.nodes = append(c.nodes, n)
	n.start(c.bin)
	return n
}

func (n *nodeProc) start(bin string) {
	n.t.Helper()
	if n.stderr == nil {
		f, err := os.OpenFile(filepath.Join(n.dir, "stderr"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			n.t.Fatal(err)
		}
		n.stderr = f
	}
	r, w, err := os.Pipe()
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd = exec.Command(bin, n.args...)
	// The race detector sleeps 1 s at exit by default; a node's exit is
	// timed by the tests.
	n.cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	n.cmd.Stdout, n.cmd.Stderr = w, n.stderr
	n.started = make(chan string, 1)
	n.exited = make(chan struct{})
	n.frozen = false
	err = n.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		n.t.Fatalf("start %s: %v", n.id, err)
	}
	var reading sync.WaitGroup
	reading.Go(func() { n.read(r, n.started) })
	go func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Wait()
		reading.Wait()
		n.exit = cmd.ProcessState.ExitCode()
		close(exited)
	}(n.cmd, n.exited)
}

// read parses the records of one run until the process closes stdout.
func (n *nodeProc) read(r io.ReadCloser, started chan<- string) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			continue // not a record (a stray print)
		}
		n.log.add(rec)
		if rec.Kind == "started" {
			if rec.Token != "" && n.token == "" {
				n.token = rec.Token // read by others after waitStarted
			}
			started <- rec.Err
		}
	}
}

// waitStarted waits until this run's Start returned, failing the test if
// it failed or the process died first.
func (n *nodeProc) waitStarted() {
	n.t.Helper()
	select {
	case e := <-n.started:
		if e != "" {
			n.t.Fatalf("%s: Start failed: %s\n%s", n.id, e, n.tail())
		}
	case <-n.exited:
		n.t.Fatalf("%s exited with %d before Start returned\n%s", n.id, n.exit, n.tail())
	case <-time.After(90 * time.Second):
		n.t.Fatalf("%s: Start did not return within 90 s\n%s", n.id, n.tail())
	}
}

// stopErr returns the error of this node's last Stop, as it reported it.
func (n *nodeProc) stopErr() string {
	n.log.mu.Lock()
	defer n.log.mu.Unlock()
	for i := len(n.log.recs) - 1; i >= 0; i-- {
		if r := n.log.recs[i]; r.Self == n.id && r.Kind == "stopped" {
			return r.Err
		}
	}
	return "(no stop reported)"
}

// stderrTail returns the first lines of a panic or data race report in
// the node's stderr, or its last lines.
func (n *nodeProc) stderrTail() string {
	data, _ := os.ReadFile(filepath.Join(n.dir, "stderr"))
	s := string(data)
	if i := strings.Index(s, "WARNING: DATA RACE"); i >= 0 {
		s = s[i:]
	} else if i := strings.Index(s, "panic:"); i >= 0 {
		s = s[i:]
	} else if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	if len(s) > 6000 {
		s = s[:6000]
	}
	return s
}

// tail returns the end of the node's stderr and of its log without the
// etcd server's lines, for failure messages.
func (n *nodeProc) tail() string {
	var b strings.Builder
	data, _ := os.ReadFile(filepath.Join(n.dir, "stderr"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	fmt.Fprintf(&b, "--- %s stderr (end):\n%s\n", n.id, data)
	log := n.logLines()
	if len(log) > 6000 {
		log = log[len(log)-6000:]
	}
	fmt.Fprintf(&b, "--- %s node.log without etcd's lines (end):\n%s\n", n.id, log)
	return b.String()
}

// logLines returns the lines of the node's log (all its runs) that hold
// any of words, or all lines without words (the last 30,000 bytes of
// them), for failure messages. The etcd server's own lines are left out:
// its warnings drown the rest.
func (n *nodeProc) logLines(words ...string) string {
	data, _ := os.ReadFile(filepath.Join(n.dir, "node.log"))
	var b strings.Builder
	for line := range strings.Lines(string(data)) {
		if !strings.Contains(line, "\tetcd.etcd\t") &&
			(len(words) == 0 || slices.ContainsFunc(words, func(w string) bool { return strings.Contains(line, w) })) {
			b.WriteString(line)
		}
	}
	if s := b.String(); len(s) > 30000 {
		return "…" + s[len(s)-30000:]
	}
	return b.String()
}

func (n *nodeProc) running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return n.cmd != nil
	}
}

func (n *nodeProc) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("%s: signal %v: %v", n.id, sig, err)
	}
}

// kill ends the process at once (SIGKILL) and waits for it.
func (n *nodeProc) kill() {
	n.signal(syscall.SIGKILL)
	<-n.exited
}

// freeze stops the process (SIGSTOP); thaw lets it go on (SIGCONT).
func (n *nodeProc) freeze() { n.signal(syscall.SIGSTOP); n.frozen = true }
func (n *nodeProc) thaw()   { n.signal(syscall.SIGCONT); n.frozen = false }

// term asks the node to stop gracefully (SIGTERM) without waiting.
func (n *nodeProc) term() { n.signal(syscall.SIGTERM) }

// waitExit waits for the process to end and returns its exit code.
func (n *nodeProc) waitExit(timeout time.Duration) int {
	n.t.Helper()
	select {
	case <-n.exited:
		return n.exit
	case <-time.After(timeout):
		n.t.Fatalf("%s did not exit within %v\n%s", n.id, timeout, n.tail())
		return 0
	}
}

// restart starts the process again with exactly its original arguments.
func (n *nodeProc) restart(bin string) {
	n.t.Helper()
	if n.running() {
		n.t.Fatalf("%s: restart while running", n.id)
	}
	n.start(bin)
}

// killAll ends every node process still running (thawing frozen ones so
// that SIGKILL is delivered) and closes their files.
func (c *procCluster) killAll() {
	for _, n := range c.nodes {
		if n.running() {
			n.cmd.Process.Signal(syscall.SIGCONT)
			n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.exited
		}
		if n.stderr != nil {
			n.stderr.Close()
		}
	}
}

// clusterView is the part of GET /cluster the tests read.
type clusterView struct {
	Leader  string `json:"leader"`
	Settled bool   `json:"settled"`
	Members []struct {
		ID          string `json:"id"`
		Incarnation int64  `json:"incarnation"`
	} `json:"members"`
	Partitions []clusterkit.Partition `json:"partitions"`
}

// view asks node n's HTTP API for its view of the cluster.
func (n *nodeProc) view(ctx context.Context) (*clusterView, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.http+"/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /cluster: %s", n.id, resp.Status)
	}
	var c clusterView
	return &c, json.NewDecoder(resp.Body).Decode(&c)
}

// settled reports whether every node in want is running and sees a settled
// map whose members are exactly want and whose partitions all have a
// primary.
func settled(want []*nodeProc) bool {
	ids := map[string]bool{}
	for _, n := range want {
		ids[n.id] = true
	}
	for _, n := range want {
		if !n.running() || n.frozen {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := n.view(ctx)
		cancel()
		if err != nil || !c.Settled || len(c.Members) != len(want) {
			return false
		}
		for _, m := range c.Members {
			if !ids[m.ID] {
				return false
			}
		}
		for _, p := range c.Partitions {
			if p.PrimaryNode == "" {
				return false
			}
		}
	}
	return true
}

// waitSettled waits until settled(want) holds and returns when it first did.
func (c *procCluster) waitSettled(want []*nodeProc, timeout time.Duration) time.Time {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !settled(want) {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, n := range want {
				b.WriteString(n.tail())
			}
			c.t.Fatalf("cluster of %d not settled within %v\n%s", len(want), timeout, b.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Now()
}

// etcdTLS is the TLS configuration of an etcd client with this node's
// certificate (from its DataDir/tls), for the embedded etcd's client port.
func (n *nodeProc) etcdTLS() *tls.Config {
	n.t.Helper()
	cert, pool, err := pki.Dir(filepath.Join(n.dir, "data", "tls")).LoadNode()
	if err != nil {
		n.t.Fatalf("%s: %v", n.id, err)
	}
	return pki.ClientConfig(cert, pool)
}
