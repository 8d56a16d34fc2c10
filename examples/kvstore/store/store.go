package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Mode selects how writes are acknowledged and who routes requests.
type Mode string

const (
	// ModeSync acknowledges a write once a majority of the partition's
	// serving set (primary included) holds it, and confirms every read with
	// that majority; clients may route to the primary themselves (the
	// client package's Routed option, with a clusterkit.Router).
	ModeSync Mode = "sync"
	// ModeAsync acknowledges a write once the primary applied it and
	// replicates it in the background; reads are the primary's alone. A
	// primary that dies loses the writes it had not passed on yet.
	ModeAsync Mode = "async"
	// ModeServerSide replicates as ModeSync, for thin clients that know
	// nothing of ClusterKit: any node forwards a request to the primary
	// (as in the other modes).
	ModeServerSide Mode = "server-side"
)

// ParseMode returns the Mode named s.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeSync, ModeAsync, ModeServerSide:
		return m, nil
	}
	return "", fmt.Errorf("%w: mode must be sync, async or server-side, got %q", ErrInvalidConfig, s)
}

// quorum reports whether writes and reads wait for a majority.
func (m Mode) quorum() bool { return m != ModeAsync }

// Sentinel errors.
var (
	// ErrInvalidConfig: a Config field or flag breaks its rule.
	ErrInvalidConfig = errors.New("kvstore: invalid config")
	// errNotApplied: the request was refused before anything changed
	// anywhere (not primary, taking over, stale epoch, draining); the
	// client may retry it. Answered 503.
	errNotApplied = errors.New("kvstore: not applied")
	// errOutcomeUnknown: a write reached some replicas but was not
	// acknowledged by a majority in time; it may or may not take effect.
	// Answered 504.
	errOutcomeUnknown = errors.New("kvstore: outcome unknown")
)

// Timing of the replication protocol.
const (
	// peerTimeout bounds one call to another node.
	peerTimeout = time.Second
	// activationTimeout bounds one take-over; requests wait for it with
	// their own deadline.
	activationTimeout = 10 * time.Second
	// retryDelay separates the rounds of a take-over.
	retryDelay = 50 * time.Millisecond
	// activatorInterval is how often a node looks for partitions it must
	// take over (requests also start take-overs).
	activatorInterval = 100 * time.Millisecond
)

// Store is a replicated key-value store on one ClusterKit node. A key
// lives in the partition ClusterKit maps it to; the partition's primary
// orders its writes (Version) and replicates them, carrying the
// partition's epoch, to the serving replicas and to nodes still receiving
// the partition. See the package documentation for the protocol.
//
// Create it with New before the node starts (it registers hooks), serve
// Handler, and Close it after the node stopped. All methods are safe for
// concurrent use.
type Store struct {
	ck    *clusterkit.ClusterKit
	mode  Mode
	me    string
	log   *zap.Logger
	parts []*partition
	peers *peerClient

	ctx    context.Context // cancelled by Close; every goroutine derives from it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	draining atomic.Bool
	// addrs maps node IDs to store addresses, from the last membership the
	// activator saw.
	addrs atomic.Pointer[map[string]string]
	// formerMu guards former: the store addresses of nodes that were
	// members recently, and when they were last seen as members.
	formerMu sync.Mutex
	former   map[string]time.Time

	forwarded   atomic.Int64
	activations atomic.Int64
}

// New makes a store for ck, registers its OnPartitionChange hook and
// starts its activator goroutine. Call it before ck.Start, and Close after
// ck.Stop.
func New(ck *clusterkit.ClusterKit, mode Mode, logger *zap.Logger) (*Store, error) {
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	n := ck.GetCluster().PartitionCount
	s := &Store{ck: ck, mode: mode, me: ck.GetMyNodeID(), log: logger, parts: make([]*partition, n), peers: newPeerClient(),
		former: map[string]time.Time{}}
	for i := range s.parts {
		s.parts[i] = newPartition()
	}
	empty := map[string]string{}
	s.addrs.Store(&empty)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	ck.OnPartitionChange(s.onPartitionChange)
	ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) {
		if e.Node.ID == s.me {
			// Nothing is dropped: every entry carries its version, so a
			// stale copy can never overwrite a newer write, and whatever
			// this node kept may be the last copy of something. A new
			// process starts empty anyway.
			s.log.Info("rejoined; keeping what this node holds", zap.Int("keys", s.Keys()))
		}
	})
	s.wg.Add(1)
	go s.activator()
	return s, nil
}

// Mode returns the store's mode.
func (s *Store) Mode() Mode { return s.mode }

// Drain makes the store refuse client requests (503, nothing applied)
// while it keeps answering the other nodes; call it before a graceful
// ck.Stop so that this node stops acting as a primary first.
func (s *Store) Drain() { s.draining.Store(true) }

// Close stops the store's goroutines and waits for them. Call it after
// the node stopped.
func (s *Store) Close() {
	s.cancel()
	s.wg.Wait()
	s.peers.close()
}

// Keys counts the keys holding a value in the partitions this node serves.
func (s *Store) Keys() int {
	n := 0
	for _, p := range s.ck.GetPartitionsForNode(s.me) {
		n += s.parts[p.Index].live()
	}
	return n
}

// Handler serves the client API (GET, PUT and DELETE /kv/{key}), the
// calls the nodes make to each other (/internal/...) and GET /stats.
// Routing clients follow the map with a clusterkit.Router; the node's
// ClusterKit API is on its own port.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kv/{key...}", s.handleGet)
	mux.HandleFunc("PUT /kv/{key...}", s.handlePut)
	mux.HandleFunc("DELETE /kv/{key...}", s.handleDelete)
	mux.HandleFunc("GET /stats", s.handleStats)
	s.registerPeerAPI(mux)
	return mux
}

// activator starts the take-over of every partition this node became the
// primary of, and keeps the address table fresh.
func (s *Store) activator() {
	defer s.wg.Done()
	t := time.NewTicker(activatorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		c := s.ck.GetCluster()
		s.refreshAddrs(c)
		for i := range c.Partitions {
			if p := &c.Partitions[i]; p.PrimaryNode == s.me {
				s.startActivation(p)
			}
		}
	}
}

func (s *Store) refreshAddrs(c *clusterkit.Cluster) {
	m := make(map[string]string, len(c.Nodes))
	now := time.Now()
	s.formerMu.Lock()
	defer s.formerMu.Unlock()
	for _, n := range c.Nodes {
		if a := n.Services[ServiceName]; a != "" {
			m[n.ID] = a
			if n.ID != s.me {
				s.former[a] = now
			}
		}
	}
	for a, seen := range s.former {
		if now.Sub(seen) > formerFor {
			delete(s.former, a)
		}
	}
	s.addrs.Store(&m)
}

// formerFor is how long a take-over still asks a node that left the
// membership for what it holds.
const formerFor = 10 * time.Minute

// formerMembers returns the addresses of recent members that are not in
// members now.
func (s *Store) formerMembers(members map[string]bool) []string {
	s.formerMu.Lock()
	defer s.formerMu.Unlock()
	var out []string
	for a := range s.former {
		if !members[a] {
			out = append(out, a)
		}
	}
	return out
}

// addrOf returns the store address of node id, or "".
func (s *Store) addrOf(id string) string {
	if a := (*s.addrs.Load())[id]; a != "" {
		return a
	}
	s.refreshAddrs(s.ck.GetCluster())
	return (*s.addrs.Load())[id]
}

// ServiceName is the name under which a node publishes its store address
// in its ClusterKit member record (Options.Services).
const ServiceName = "kv"

func majority(n int) int { return n/2 + 1 }
