// Package localcluster runs a kvstore cluster as separate processes on
// loopback, for the demo, the benchmark and the tests: every node is a
// child process with its own data directory and free ports, its events
// arrive as JSON lines on its stdout, its logs go to a file, and it can be
// stopped gracefully, killed, frozen and restarted with the same options.
//
// Children die with their parent (Linux parent-death signal), and Close
// kills every child and removes the working directory.
package localcluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
)

// childEnv marks a process started by SelfCommand as a node.
const childEnv = "KVSTORE_LOCALCLUSTER_NODE"

// RunChildIfRequested runs the kvstore node command and exits when this
// process was started by a SelfCommand cluster; otherwise it returns at
// once. Call it first thing in main (or TestMain).
func RunChildIfRequested() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(store.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// SelfCommand returns a Command that re-executes the running program as a
// node; the program must call RunChildIfRequested first.
func SelfCommand() (Command, error) {
	exe, err := os.Executable()
	if err != nil {
		return Command{}, fmt.Errorf("localcluster: find this program: %w", err)
	}
	return Command{Path: exe, Env: []string{childEnv + "=1"}}, nil
}

// Command is how to run a node: Path with the kvstore flags after Args,
// with Env added to this process's environment.
type Command struct {
	Path string
	Args []string
	Env  []string
}

// Options configures a cluster. Zero values mean the documented defaults.
type Options struct {
	// Command runs one node (a kvstore binary, or SelfCommand). Required.
	Command Command
	// Dir holds every node's data and log; default a new temp dir, removed
	// by Close.
	Dir string
	// Mode, Partitions, ReplicationFactor and LeaseTTL are the nodes'
	// flags (0 or "": the kvstore defaults).
	Mode              store.Mode
	Partitions        int
	ReplicationFactor int
	LeaseTTL          time.Duration
	// Events, if set, receives every event of every node, on the node's
	// reader goroutine.
	Events func(store.Event)
}

// Cluster is a set of node processes. Its methods are safe for concurrent
// use.
type Cluster struct {
	opts    Options
	dir     string
	ownsDir bool

	mu    sync.Mutex
	nodes map[string]*Node // by ID, the latest process of each
}

// New prepares a cluster with no node running yet.
func New(opts Options) (*Cluster, error) {
	if opts.Command.Path == "" {
		return nil, errors.New("localcluster: Options.Command.Path is required")
	}
	c := &Cluster{opts: opts, dir: opts.Dir, nodes: map[string]*Node{}}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "kvstore-cluster-")
		if err != nil {
			return nil, err
		}
		c.dir, c.ownsDir = dir, true
	}
	return c, nil
}

// Dir returns the directory holding the nodes' data and logs.
func (c *Cluster) Dir() string { return c.dir }

// Start starts node id (again, with the same data directory, if it ran
// before) and returns once it is serving. The first node bootstraps the
// cluster; later ones join through a running node.
func (c *Cluster) Start(ctx context.Context, id string) (*Node, error) {
	c.mu.Lock()
	if n := c.nodes[id]; n != nil && n.Running() {
		c.mu.Unlock()
		return nil, fmt.Errorf("localcluster: %s is running", id)
	}
	join := ""
	for _, n := range c.sortedLocked() {
		if n.HTTP != "" && n.Running() && !n.Frozen() {
			join = n.HTTP
			break
		}
	}
	c.mu.Unlock()

	args := append([]string(nil), c.opts.Command.Args...)
	args = append(args, "-id", id, "-http", "127.0.0.1:0", "-api", "127.0.0.1:0",
		"-data", filepath.Join(c.dir, id), "-token", "localcluster", "-events", "json")
	if join != "" {
		args = append(args, "-join", join)
	}
	if c.opts.Mode != "" {
		args = append(args, "-mode", string(c.opts.Mode))
	}
	if c.opts.Partitions > 0 {
		args = append(args, "-partitions", strconv.Itoa(c.opts.Partitions))
	}
	if c.opts.ReplicationFactor > 0 {
		args = append(args, "-rf", strconv.Itoa(c.opts.ReplicationFactor))
	}
	if c.opts.LeaseTTL > 0 {
		args = append(args, "-lease", c.opts.LeaseTTL.String())
	}
	log, err := os.OpenFile(filepath.Join(c.dir, id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.opts.Command.Path, args...)
	cmd.Env = append(os.Environ(), c.opts.Command.Env...)
	cmd.Stderr = log
	cmd.SysProcAttr = childAttrs()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("localcluster: start %s: %w", id, err)
	}
	n := &Node{ID: id, cmd: cmd, log: log, exited: make(chan struct{}), ready: make(chan store.Event, 1)}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	go n.read(stdout, c.opts.Events)

	select {
	case ev := <-n.ready:
		c.mu.Lock()
		n.API, n.HTTP = ev.API, ev.HTTP
		c.mu.Unlock()
		return n, nil
	case <-n.exited:
		return nil, fmt.Errorf("localcluster: %s exited before it was ready (%v); log: %s", id, n.err, filepath.Join(c.dir, id+".log"))
	case <-ctx.Done():
		n.Kill()
		return nil, fmt.Errorf("localcluster: %s not ready: %w; log: %s", id, ctx.Err(), filepath.Join(c.dir, id+".log"))
	}
}

// Node returns the latest process of node id, or nil.
func (c *Cluster) Node(id string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Running returns the nodes that were ready and whose process runs
// (frozen ones included), sorted by ID.
func (c *Cluster) Running() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.sortedLocked() {
		if n.API != "" && n.Running() {
			out = append(out, n)
		}
	}
	return out
}

func (c *Cluster) sortedLocked() []*Node {
	out := make([]*Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Close kills every node and removes the directory if New made it.
func (c *Cluster) Close() {
	c.mu.Lock()
	nodes := c.sortedLocked()
	c.mu.Unlock()
	for _, n := range nodes {
		n.Kill()
	}
	if c.ownsDir {
		os.RemoveAll(c.dir)
	}
}

// Node is one node process.
type Node struct {
	ID string
	// API and HTTP are the store's and ClusterKit's addresses; set (under
	// the cluster's lock) before Start returns the node, never changed.
	API, HTTP string

	cmd    *exec.Cmd
	log    *os.File
	ready  chan store.Event
	exited chan struct{}
	err    error // the process's exit, set before exited closes

	mu     sync.Mutex
	frozen bool
}

// read passes the node's events on until its stdout closes, then waits
// for the process.
func (n *Node) read(stdout io.Reader, events func(store.Event)) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev store.Event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Kind == store.EventReady {
			select {
			case n.ready <- ev:
			default:
			}
		}
		if events != nil {
			events(ev)
		}
	}
	n.err = n.cmd.Wait()
	n.log.Close()
	close(n.exited)
}

// Running reports whether the process has not exited.
func (n *Node) Running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Frozen reports whether Freeze stopped the process (and Thaw did not
// resume it yet).
func (n *Node) Frozen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.frozen && n.Running()
}

// Exited is closed when the process has exited.
func (n *Node) Exited() <-chan struct{} { return n.exited }

// Kill sends SIGKILL and waits for the process to exit.
func (n *Node) Kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// Stop sends SIGTERM (a graceful leave) and waits until the process
// exits or ctx ends, then kills it. It returns the exit error.
func (n *Node) Stop(ctx context.Context) error {
	n.Thaw()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return n.err
	case <-ctx.Done():
		n.Kill()
		return fmt.Errorf("localcluster: %s did not stop in time: %w", n.ID, ctx.Err())
	}
}

// Freeze stops the process with SIGSTOP, as a long pause would.
func (n *Node) Freeze() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cmd.Process.Signal(syscall.SIGSTOP)
	n.frozen = true
}

// Thaw resumes a frozen process with SIGCONT.
func (n *Node) Thaw() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.frozen {
		n.cmd.Process.Signal(syscall.SIGCONT)
		n.frozen = false
	}
}

// Pid returns the process ID.
func (n *Node) Pid() int { return n.cmd.Process.Pid }
