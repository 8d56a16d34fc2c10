package embedetcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/soheilhy/cmux"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"google.golang.org/grpc"
)

// clientServers collects the gRPC servers etcd serves clients with, so
// that they can be stopped hard before the member is removed or closed.
// etcd registers them (through embed.Config.ServiceRegister) from its own
// goroutines once the server is ready. Safe for concurrent use.
type clientServers struct {
	mu      sync.Mutex
	servers []*grpc.Server
	closed  bool
	// stopped counts the stops close began that have not returned.
	stopped sync.WaitGroup
}

// register is embed.Config.ServiceRegister: it records gs, or stops it at
// once when the clients were closed already (Serve then returns at once).
func (c *clientServers) register(gs *grpc.Server) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		gs.Stop()
		return
	}
	c.servers = append(c.servers, gs)
}

// stopWait bounds how long close waits for the client servers to stop. A
// server that serves TLS runs gRPC under etcd's HTTP server (ServeHTTP),
// where grpc.Server.Stop waits for every stream handler to return, and a
// watch stream can outlive that wait; etcd's Close then ends those
// connections, and the stop completes.
const stopWait = 2 * time.Second

// close stops every client server hard: connections are closed at once,
// streams (watches, lease keep-alives) fail, and clients fail over to
// other members instead of waiting for etcd's graceful drain. It returns
// when the servers have stopped or after stopWait; stopped is done once
// every stop it began has returned. Idempotent.
func (c *clientServers) close() {
	c.mu.Lock()
	servers := c.servers
	c.servers, c.closed = nil, true
	c.mu.Unlock()
	var batch sync.WaitGroup
	for _, gs := range servers {
		c.stopped.Add(1)
		batch.Add(1)
		go func() {
			defer c.stopped.Done()
			defer batch.Done()
			gs.Stop()
		}()
	}
	done := make(chan struct{})
	go func() { batch.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopWait):
	}
}

// CloseClients stops serving clients: every client connection to this
// member is closed at once, so clients with other endpoints fail over to
// them immediately (a graceful drain would hold their watches and lease
// keep-alives for etcd's request timeout, 5 s + 2 × ElectionMs), and no
// client request can reach the member while it is removed or stopped (etcd
// #21966, #22189: a Maintenance request reaching a member that is being
// removed or closed can crash the process). The member keeps its Raft role.
// It waits at most stopWait for the servers to stop (Stop waits for the
// rest). Idempotent; Stop and a server that stops on its own call it.
func (m *Member) CloseClients() { m.clients.close() }

// MemberInfo is one member of the cluster as this member knows it.
type MemberInfo struct {
	ID         uint64
	Name       string // empty until the member has started
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool
}

// Members returns the cluster's members from this member's local state,
// without a request (so also without a quorum); it may be slightly behind
// the cluster.
func (m *Member) Members() []MemberInfo {
	var out []MemberInfo
	for _, mm := range m.etcd.Server.Cluster().Members() {
		out = append(out, MemberInfo{ID: uint64(mm.ID), Name: mm.Name, PeerURLs: mm.PeerURLs,
			ClientURLs: mm.ClientURLs, IsLearner: mm.IsLearner})
	}
	return out
}

// OtherVoterURLs returns the client URLs of the started voters other than
// this member, from its local state (see Members); it also answers after
// the server stopped.
func (m *Member) OtherVoterURLs() []string {
	var urls []string
	for _, mm := range m.Members() {
		if mm.ID != m.id && mm.Name != "" && !mm.IsLearner {
			urls = append(urls, mm.ClientURLs...)
		}
	}
	return urls
}

// IsLeader reports whether this member is the Raft leader.
func (m *Member) IsLeader() bool { return m.etcd.Server.Leader() == types.ID(m.id) }

// IsLearner reports whether this member is a learner (not a voter).
func (m *Member) IsLearner() bool { return m.etcd.Server.IsLearner() }

// TransferLeadership hands Raft leadership to the voter to, if this member
// leads, and returns once to leads or ctx ends. A leaving leader calls it
// before it is removed, so that the others need not wait an election
// timeout to elect a new one. Nothing is done when this member does not
// lead.
func (m *Member) TransferLeadership(ctx context.Context, to uint64) error {
	if !m.IsLeader() {
		return nil
	}
	if err := m.etcd.Server.MoveLeader(ctx, m.id, to); err != nil {
		return fmt.Errorf("embedetcd: transfer leadership from %x to %x: %w", m.id, to, err)
	}
	return nil
}

// closedByUs reports whether err, reported by etcd's client serving, is
// the consequence of CloseClients (the listeners it closed), not a fault.
func closedByUs(err error) bool {
	return errors.Is(err, cmux.ErrServerClosed) || errors.Is(err, cmux.ErrListenerClosed) ||
		errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, net.ErrClosed)
}
