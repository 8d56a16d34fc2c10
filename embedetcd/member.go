package embedetcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/freeport"
)

// removedProbeTimeout bounds the question to the peers, after the server
// stopped on its own, whether this member was removed.
const removedProbeTimeout = 2 * time.Second

// Member is a running embedded etcd member, returned by Start and Join.
// Its methods are safe for concurrent use. The zero value is not usable.
//
// The member owns the etcd server and its goroutines; Stop releases them
// and waits for them. Stop must be called even after Done is closed (a
// server that stopped on its own still holds its listeners).
type Member struct {
	etcd      *embed.Etcd
	clientURL string
	peerURL   string
	id        uint64
	log       *zap.Logger
	s         *settings // the validated Config it was started with

	transferTimeout time.Duration // bound of the leadership hand-off in Stop

	done    chan struct{} // closed by watch when the server has stopped
	wg      sync.WaitGroup
	clients *clientServers

	stopOnce sync.Once
	mu       sync.Mutex
	stopped  bool  // Stop was called
	err      error // why the server stopped; set before done is closed
	serveErr error // first error etcd reported on Err()

	// Figures of the Join that produced this member (zero for Start).
	joinAdded, joinReady, joinVoter time.Time
}

// ClientURL returns the advertised client URL ("http://host:port", https
// with Config.TLS) with the
// concrete port, also when Config.ClientAddr had port 0.
func (m *Member) ClientURL() string { return m.clientURL }

// PeerURL returns the advertised peer URL.
func (m *Member) PeerURL() string { return m.peerURL }

// ID returns etcd's member ID.
func (m *Member) ID() uint64 { return m.id }

// Done returns a channel that is closed when the etcd server has stopped
// for any reason: Stop, removal from the cluster, or a fatal error. Err
// then says why.
func (m *Member) Done() <-chan struct{} { return m.done }

// Err returns nil while the server runs or if Stop stopped it. If the
// server stopped on its own (before any Stop), it returns an error
// wrapping ErrRemoved (this member was removed from the cluster; its data
// must not be reused, and Join moves it aside) or ErrStopped.
func (m *Member) Err() error {
	select {
	case <-m.done:
	default:
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Stop stops the etcd server and waits until its goroutines and listeners
// are gone. It first closes every client connection (CloseClients: clients
// with other endpoints fail over at once, and no request reaches a closing
// server); a leader then hands leadership to a connected voter (bounded by
// 2 × ElectionMs). In a multi-member cluster Stop takes up to about 1 s,
// as etcd waits that long for its peers' connections to close.
//
// The data dir is kept, so Start or Join can restart the member. Stop does
// not change cluster membership: a stopped voter still counts towards the
// quorum (remove it with MemberRemove to shrink the cluster).
//
// Stop is idempotent and safe for concurrent use; every call returns after
// the server has stopped. It returns the first error etcd's listeners
// reported while serving, if any (the server is stopped anyway).
func (m *Member) Stop() error {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
		m.CloseClients()
		m.handOff()
		m.etcd.Close() // must run once: a second Close panics
		m.clients.stopped.Wait()
		m.wg.Wait()
		for err := range m.etcd.Err() { // closed by Close
			if err != nil && m.serveErr == nil && !closedByUs(err) {
				m.serveErr = err
			}
		}
		m.log.Debug("embedded etcd stopped")
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.serveErr != nil {
		return fmt.Errorf("embedetcd: member %q served with error: %w", m.etcd.Config().Name, m.serveErr)
	}
	return nil
}

// handOff hands leadership to a connected voter, if this member leads,
// and then stops the server. etcd's own shutdown does the same, but its
// transfer can wait its full request timeout (5 s + 2 × election timeout)
// when the chosen peer has just died; this bounds the wait to
// transferTimeout, after which HardStop ends the transfer (followers then
// elect a new leader after an election timeout).
func (m *Member) handOff() {
	srv := m.etcd.Server
	transferred := make(chan struct{})
	go func() {
		defer close(transferred)
		_ = srv.TryTransferLeadershipOnShutdown()
	}()
	t := time.NewTimer(m.transferTimeout)
	defer t.Stop()
	select {
	case <-transferred:
	case <-t.C:
		m.log.Debug("leadership transfer on stop timed out", zap.Duration("after", m.transferTimeout))
	}
	srv.HardStop() // cancels the server's context, which ends a pending transfer
	<-transferred
}

// watch closes done once the server has stopped and records why.
func (m *Member) watch() {
	defer m.wg.Done()
	<-m.etcd.Server.StopNotify()
	m.CloseClients() // a removed or failed server must not serve requests
	m.mu.Lock()
	stopped := m.stopped
	m.mu.Unlock()
	var err error
	if !stopped {
		name := m.etcd.Config().Name
		if m.etcd.Server.Cluster().Member(types.ID(m.id)) == nil || m.removedPerPeers() {
			err = fmt.Errorf("%w: member %q (id %x)", ErrRemoved, name, m.id)
		} else {
			err = fmt.Errorf("%w: member %q (id %x) stopped on its own", ErrStopped, name, m.id)
		}
	}
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
	close(m.done)
}

// peerMember is the part of etcd's peer /members answer that we read.
type peerMember struct {
	ID uint64 `json:"id"`
}

// removedPerPeers asks the other members (over their peer URLs, as etcd
// members do among themselves) whether this member is still in the
// cluster. A member whose peers refused it because it had been removed
// stops before it applies its own removal, so its local view still lists
// it. The question takes at most removedProbeTimeout; no answer means no.
func (m *Member) removedPerPeers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), removedProbeTimeout)
	defer cancel()
	tr := m.s.peerHTTPTransport()
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	for _, mem := range m.etcd.Server.Cluster().Members() {
		if uint64(mem.ID) == m.id {
			continue
		}
		for _, u := range mem.PeerURLs {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/members", nil)
			if err != nil {
				continue
			}
			resp, err := cl.Do(req)
			if err != nil {
				continue
			}
			var members []peerMember
			err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&members)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || len(members) == 0 {
				continue
			}
			return !slices.ContainsFunc(members, func(x peerMember) bool { return x.ID == m.id })
		}
	}
	return false
}

// Start starts the member described by cfg and returns once it is ready
// to serve clients, or when ctx ends (the server is then stopped again).
//
// If cfg.Dir holds no data, Start bootstraps a new one-member cluster with
// a random cluster token. If it holds data, Start restarts that member with
// it, whatever cluster it belongs to (a member of a multi-member cluster is
// ready once it reaches a quorum); if that member turns out to have been
// removed from its cluster, its data is moved aside and the error wraps
// ErrRemoved (join the cluster anew with Join). A member dir without a write-ahead log (left by
// a start that failed early) is moved aside first.
//
// etcd's own start-up (opening the data, binding ports) is not cancellable;
// it is bounded by etcd's internal timeouts.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if !hasWAL(s.Dir) {
		if err := moveAsideIfPresent(s, "incomplete"); err != nil {
			return nil, err
		}
		token, err := randomToken()
		if err != nil {
			return nil, fmt.Errorf("embedetcd: start %q: %w", s.Name, err)
		}
		return startMember(ctx, s, s.Name+"="+s.peerURL, token, embed.ClusterStateFlagNew, 0)
	}
	m, err := startMember(ctx, s, "", "", embed.ClusterStateFlagNew, 0)
	if errors.Is(err, ErrRemoved) {
		if merr := moveAsideIfPresent(s, "removed"); merr != nil {
			return nil, errors.Join(err, merr)
		}
	}
	return m, err
}

// SetAside moves the data of a member that is no longer in its cluster
// (for example after it removed itself) aside to Dir/member.removed-<time>,
// so that the next Start or Join does not restart it. The data is kept for
// inspection; nothing happens when Dir holds no member data.
func SetAside(cfg Config) error {
	s, err := cfg.validate()
	if err != nil {
		return err
	}
	return moveAsideIfPresent(s, "removed")
}

// startMember starts etcd and waits until it is ready, ctx ends or it
// stops. If wantID is not 0 and the started member has another ID (its
// data dir belongs to an earlier member), it stops at once and returns
// errStaleData. On any error nothing keeps running.
func startMember(ctx context.Context, s *settings, initialCluster, token, state string, wantID uint64) (*Member, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedetcd: start %q: %w", s.Name, err)
	}
	begin := time.Now()
	clients := &clientServers{}
	var (
		e         *embed.Etcd
		clientURL string
		err       error
	)
	// A port can be taken between choosing it and etcd binding it (or, for
	// a fixed port, still be held briefly by a process that just exited):
	// retry a bounded number of times, choosing a new client port if it
	// was 0.
	for attempt := 1; ; attempt++ {
		port := s.clientPort
		if port == 0 {
			if port, err = freeport.Pick(s.clientBindHost); err != nil {
				return nil, fmt.Errorf("embedetcd: start %q: choose client port: %w", s.Name, err)
			}
		}
		_, adv := s.clientURLs(port)
		clientURL = adv.String()
		ec := s.embedConfig(port, initialCluster, token, state)
		ec.ServiceRegister = clients.register
		e, err = embed.StartEtcd(ec)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || attempt == 10 {
			break
		}
		if werr := sleepCtx(ctx, 100*time.Millisecond); werr != nil {
			return nil, fmt.Errorf("embedetcd: start %q: %w (last error: %v)", s.Name, werr, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("embedetcd: start %q: %w", s.Name, err)
	}
	m := &Member{
		etcd:      e,
		clientURL: clientURL,
		peerURL:   s.peerURL,
		id:        uint64(e.Server.MemberID()),
		log:       s.log,
		s:         s,
		done:      make(chan struct{}),
		clients:   clients,

		transferTimeout: 2 * time.Duration(s.ElectionMs) * time.Millisecond,
	}
	m.wg.Add(1)
	go m.watch()
	if wantID != 0 && m.id != wantID {
		_ = m.Stop()
		return nil, fmt.Errorf("%w: member %q: data dir has id %x, the cluster knows %x", errStaleData, s.Name, m.id, wantID)
	}

	select {
	case <-e.Server.ReadyNotify():
		s.log.Debug("embedded etcd ready", zap.String("client-url", clientURL),
			zap.String("peer-url", s.peerURL), zap.Duration("took", time.Since(begin)))
		return m, nil
	case <-m.done:
		err = m.Err()
		_ = m.Stop()
		return nil, fmt.Errorf("embedetcd: start %q: not ready: %w", s.Name, err)
	case <-ctx.Done():
		_ = m.Stop()
		return nil, fmt.Errorf("embedetcd: start %q: not ready: %w", s.Name, ctx.Err())
	}
}

// HasData reports whether dir, a Config.Dir, holds an initialised member:
// a write-ahead log in dir/member/wal, which is etcd's own test. Start and
// Join restart such a member instead of creating a new one. Moved-aside
// data (dir/member.removed-*) does not count.
func HasData(dir string) bool { return hasWAL(dir) }

func hasWAL(dir string) bool {
	return wal.Exist(filepath.Join(dir, "member", "wal"))
}

// moveAsideIfPresent renames Dir/member to Dir/member.<why>-<time>, so the
// data is kept for inspection but never reused.
func moveAsideIfPresent(s *settings, why string) error {
	src := filepath.Join(s.Dir, "member")
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	dst := src + "." + why + "-" + time.Now().UTC().Format("20060102T150405.000000000")
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("embedetcd: move aside data of member %q: %w", s.Name, err)
	}
	s.log.Warn("moved member data aside", zap.String("reason", why), zap.String("to", dst))
	return nil
}

func randomToken() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "clusterkit-" + hex.EncodeToString(b), nil
}

// sleepCtx waits d or until ctx ends; it returns ctx.Err() in the latter
// case.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
