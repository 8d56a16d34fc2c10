package etcdtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// memberEnv carries a child member's configuration (JSON) from StartCluster
// to RunMemberIfChild.
const memberEnv = "CLUSTERKIT_ETCDTEST_MEMBER"

// memberLogEnv, if set (to anything), makes the members log to stderr
// (info level and above), to debug a test.
const memberLogEnv = "CLUSTERKIT_ETCDTEST_LOG"

// memberSpec is what a child process needs to run one member.
type memberSpec struct {
	Name           string `json:"name"`
	Dir            string `json:"dir"`
	ClientURL      string `json:"client_url"`
	PeerURL        string `json:"peer_url"`
	InitialCluster string `json:"initial_cluster"`
}

// Cluster is a multi-member etcd cluster whose members run in child
// processes (re-executions of the test binary, see RunMemberIfChild), so
// that a test can freeze one member (SIGSTOP) while its sockets stay open,
// as a hung or paused host would. Its methods are safe for concurrent use.
type Cluster struct {
	Members []*Member
}

// Member is one member process of a Cluster.
type Member struct {
	Name      string
	ClientURL string // "http://127.0.0.1:port"

	cmd    *exec.Cmd
	stdin  *os.File // our end of its stdin: the member runs while it is open
	stdout *os.File // our end of its stdout
	exited chan struct{}

	mu     sync.Mutex
	frozen bool
}

// RunMemberIfChild runs an etcd member and exits if this process was
// started by StartCluster; otherwise it returns at once. Call it first in
// the TestMain of every package that uses StartCluster:
//
//	func TestMain(m *testing.M) {
//		etcdtest.RunMemberIfChild()
//		goleak.VerifyTestMain(m)
//	}
//
// The member runs until its stdin closes (the parent ended or killed it).
func RunMemberIfChild() {
	raw, ok := os.LookupEnv(memberEnv)
	if !ok {
		return
	}
	os.Exit(runMember(raw))
}

func runMember(raw string) int {
	var spec memberSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "etcdtest member: bad %s: %v\n", memberEnv, err)
		return 2
	}
	client, err := url.Parse(spec.ClientURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdtest member: %v\n", err)
		return 2
	}
	peer, err := url.Parse(spec.PeerURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdtest member: %v\n", err)
		return 2
	}
	cfg := FastConfig(spec.Name, spec.Dir, *client, *peer, spec.InitialCluster)
	if os.Getenv(memberLogEnv) != "" {
		zc := zap.NewDevelopmentConfig()
		zc.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.Must(zc.Build()).Named(spec.Name))
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdtest member %s: start: %v\n", spec.Name, err)
		return 2
	}
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case <-time.After(30 * time.Second):
		fmt.Fprintf(os.Stderr, "etcdtest member %s: not ready after 30s\n", spec.Name)
		e.Close()
		return 2
	}
	// The parent holds our stdin; it closes when the parent exits.
	_, _ = io.Copy(io.Discard, os.Stdin)
	e.Close()
	return 0
}

// StartCluster starts an n-member cluster (fast ticks, random loopback
// ports, temp data dirs) in n child processes and waits until every member
// is ready (30 s at most). t.Cleanup kills the processes (SIGKILL) and
// waits for them. The test binary's TestMain must call RunMemberIfChild.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if _, ok := os.LookupEnv(memberEnv); ok {
		t.Fatalf("etcdtest: StartCluster in a member process: TestMain must call RunMemberIfChild first")
	}
	specs := make([]memberSpec, n)
	var initial []string
	for i := range specs {
		specs[i] = memberSpec{
			Name:      fmt.Sprintf("m%d", i),
			Dir:       t.TempDir(),
			ClientURL: "http://" + freeLoopbackAddr(t),
			PeerURL:   "http://" + freeLoopbackAddr(t),
		}
		initial = append(initial, specs[i].Name+"="+specs[i].PeerURL)
	}
	c := &Cluster{}
	t.Cleanup(c.kill)
	ready := make(chan error, n)
	for i := range specs {
		specs[i].InitialCluster = strings.Join(initial, ",")
		m, stdout, err := startMember(specs[i])
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		c.Members = append(c.Members, m)
		go func() {
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err == nil && line != "ready\n" {
				err = fmt.Errorf("member %s said %q", m.Name, line)
			}
			if err != nil {
				err = fmt.Errorf("member %s: %w", m.Name, err)
			}
			ready <- err
		}()
	}
	for range n {
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("etcdtest: start cluster: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("etcdtest: cluster of %d not ready after 30s", n)
		}
	}
	return c
}

// startMember starts the child process of one member and returns its
// stdout, on which it writes "ready".
func startMember(spec memberSpec) (*Member, io.Reader, error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, nil, err
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), memberEnv+"="+string(raw))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	cmd.SysProcAttr = childAttr()
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, nil, fmt.Errorf("start member %s: %w", spec.Name, err)
	}
	m := &Member{Name: spec.Name, ClientURL: spec.ClientURL, cmd: cmd, stdin: inW, stdout: outR, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()
	return m, outR, nil
}

// Endpoints returns every member's client URL, in member order.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.Members))
	for i, m := range c.Members {
		eps[i] = m.ClientURL
	}
	return eps
}

// Leader returns the index of the member that the members that answer
// (the frozen ones are not asked) name as their raft leader, polling until
// they name one or ctx ends (then -1).
func (c *Cluster) Leader(ctx context.Context, cli *clientv3.Client) int {
	for {
		index := map[uint64]int{}
		var leader uint64
		for i, m := range c.Members {
			if m.IsFrozen() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := cli.Status(sctx, m.ClientURL)
			cancel()
			if err == nil {
				index[st.Header.MemberId] = i
				leader = max(leader, st.Leader)
			}
		}
		if i, ok := index[leader]; ok && leader != 0 {
			return i
		}
		select {
		case <-ctx.Done():
			return -1
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Freeze stops the member's process (SIGSTOP): it answers nothing, but its
// TCP connections stay open and the kernel still accepts new ones, as with
// a paused VM or a process stuck in a long GC or I/O stall.
func (m *Member) Freeze() { m.signal(syscall.SIGSTOP, true) }

// Thaw resumes a frozen member (SIGCONT).
func (m *Member) Thaw() { m.signal(syscall.SIGCONT, false) }

// IsFrozen reports whether Freeze was called without a Thaw since.
func (m *Member) IsFrozen() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frozen
}

func (m *Member) signal(sig syscall.Signal, frozen bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.cmd.Process.Signal(sig)
	m.frozen = frozen
}

// kill kills every member (a frozen one too) and waits for the processes.
func (c *Cluster) kill() {
	for _, m := range c.Members {
		_ = m.cmd.Process.Kill()
	}
	for _, m := range c.Members {
		<-m.exited
		m.stdin.Close()
		m.stdout.Close()
	}
}

// NewClusterClient returns a client of the given endpoints (typically
// Cluster.Endpoints) with gRPC keep-alive pings as clusterkit's client
// (5 s asked, which gRPC raises to its floor of 10 s; 2 s ping timeout),
// closed by t.Cleanup.
func NewClusterClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	return newClient(t, clientv3.Config{
		Endpoints:            endpoints,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	})
}
