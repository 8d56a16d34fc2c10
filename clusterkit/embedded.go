package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/embedetcd"
	"github.com/clusterkit-go/clusterkit/internal/freeport"
)

// startEmbedded bootstraps (or restarts) this node's etcd member and
// connects to it.
func (r *run) startEmbedded(ctx context.Context, cfg embedetcd.Config) error {
	start := time.Now()
	m, err := embedetcd.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("clusterkit: start embedded etcd: %w", err)
	}
	r.member.Store(m)
	r.ck.log.Info("embedded etcd started", zap.String("client_url", m.ClientURL()), zap.Bool("learner", m.IsLearner()),
		zap.Duration("took", time.Since(start)))
	cli, err := r.newClient(clientEndpoints(m))
	if err != nil {
		return err
	}
	r.setClient(cli)
	if m.IsLearner() {
		r.settleLearner(m)
	}
	return nil
}

// clientEndpoints is where this node's client should talk to: its own
// member, or, when that member restarted as a learner (which refuses
// everything but serializable reads), the voters it knows of.
func clientEndpoints(m *embedetcd.Member) []string {
	if !m.IsLearner() {
		return []string{m.ClientURL()}
	}
	eps := m.OtherVoterURLs()
	if len(eps) == 0 {
		return []string{m.ClientURL()}
	}
	return eps
}

// joinEmbedded makes this node's etcd member join the cluster of
// endpoints in the background, unless etcd has enough voters already (the
// node is then a plain client). The node goes on through the others'
// endpoints at once, so a start never waits for etcd's own member join.
func (r *run) joinEmbedded(ctx context.Context, cfg embedetcd.Config, endpoints []string) error {
	voters, err := voterCount(ctx, r.cli)
	if err != nil {
		return err
	}
	if voters >= r.ck.opts.Embedded.MaxVoters {
		r.ck.log.Info("etcd has enough voters; this node is a plain client", zap.Int("voters", voters))
		return nil
	}
	r.startJoin(cfg, endpoints)
	return nil
}

// etcdJoin is a background job that makes this node's member a voter:
// a join, or the promotion of a member restarted as a learner.
type etcdJoin struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the job has ended
}

// startJoin starts a background join of this node's member through
// endpoints, unless a join runs or teardown began. On success the member
// is published in r.member. Safe for concurrent use.
func (r *run) startJoin(cfg embedetcd.Config, endpoints []string) {
	r.startEtcdJob(func(ctx context.Context) {
		start := time.Now()
		m, err := embedetcd.Join(ctx, cfg, endpoints)
		if errors.Is(err, embedetcd.ErrEnoughVoters) {
			r.ck.log.Info("etcd has enough voters; this node is a plain client", zapErr(err))
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				r.ck.log.Warn("joining etcd as a voter failed; a plain client until the upkeep tries again", zapErr(err))
			}
			return
		}
		r.member.Store(m)
		r.eps.set(append(endpoints, m.ClientURL())...)
		r.ck.log.Info("embedded etcd joined as voter", zap.String("client_url", m.ClientURL()), zap.Duration("took", time.Since(start)))
	})
}

// settleLearner finishes in the background the join of this node's member
// m, which restarted from its data as a learner (the node died while its
// member joined): see embedetcd.Settle. Promoted, m stays this node's
// member; given back (etcd has its voters) or failed, m has stopped and
// the node is a plain client until the upkeep makes it join anew.
func (r *run) settleLearner(m *embedetcd.Member) {
	r.startEtcdJob(func(ctx context.Context) {
		err := embedetcd.Settle(ctx, m)
		switch {
		case err == nil:
			r.ck.log.Info("this node's etcd member restarted as a learner and is now a voter")
			return
		case errors.Is(err, embedetcd.ErrEnoughVoters):
			r.ck.log.Info("this node's etcd member restarted as a learner; etcd has enough voters, so it left: a plain client", zapErr(err))
		case ctx.Err() == nil:
			r.ck.log.Warn("promoting this node's restarted learner failed; a plain client until the upkeep tries again", zapErr(err))
		}
		r.member.CompareAndSwap(m, nil)
	})
}

// startEtcdJob runs job in the background on the run's WaitGroup, unless
// a job runs or teardown began; teardown cancels job's context and waits
// for it (stopEtcdJoin). Safe for concurrent use.
func (r *run) startEtcdJob(job func(ctx context.Context)) {
	r.joinMu.Lock()
	defer r.joinMu.Unlock()
	if r.leaving.Load() || r.joinRunning() {
		return
	}
	jctx, cancel := context.WithCancel(r.ctx)
	j := &etcdJoin{cancel: cancel, done: make(chan struct{})}
	r.join = j
	r.wg.Go(func() {
		defer close(j.done)
		defer cancel()
		job(jctx)
	})
}

// joining reports whether a background join runs.
func (r *run) joining() bool {
	r.joinMu.Lock()
	defer r.joinMu.Unlock()
	return r.joinRunning()
}

// joinRunning is joining with joinMu held.
func (r *run) joinRunning() bool {
	if r.join == nil {
		return false
	}
	select {
	case <-r.join.done:
		return false
	default:
		return true
	}
}

// stopEtcdJoin ends a background join (or waits for it to finish) before
// teardown decides whether to leave etcd. teardown sets r.leaving first,
// so no join starts after it.
func (r *run) stopEtcdJoin() {
	r.joinMu.Lock()
	j := r.join
	r.joinMu.Unlock()
	if j != nil {
		j.cancel()
		<-j.done
	}
}

// embedConfig derives the embedded member's config from the options.
func (r *run) embedConfig() (embedetcd.Config, error) {
	o := &r.ck.opts
	cfg := embedetcd.Config{
		Name:       o.NodeID,
		Dir:        filepath.Join(o.DataDir, "etcd-"+o.ClusterName),
		ClientAddr: o.Embedded.ClientAddr,
		PeerAddr:   o.Embedded.PeerAddr,
		TickMs:     uint(o.Embedded.TickInterval / time.Millisecond),
		ElectionMs: uint(o.Embedded.ElectionTimeout / time.Millisecond),
		Logger:     r.ck.log.Named("etcd"),
		// Members only ever join as learners and are promoted once in sync,
		// and leaveEtcd checks the quorum itself before a node removes its
		// own member; the strict check's 5 s guard after every peer connect
		// would only slow every join and graceful leave down.
		DisableStrictReconfigCheck: true,
		MaxVoters:                  o.Embedded.MaxVoters,
	}
	cfg = r.withTLS(cfg)
	if cfg.ClientAddr == "" || cfg.PeerAddr == "" {
		client, peer, err := defaultEmbedAddrs(o)
		if err != nil {
			return cfg, fmt.Errorf("%w: Embedded.ClientAddr/PeerAddr: %v", ErrInvalidOptions, err)
		}
		if cfg.ClientAddr == "" {
			cfg.ClientAddr = client
		}
		if cfg.PeerAddr == "" {
			cfg.PeerAddr = peer
		}
	}
	if host, _, _ := net.SplitHostPort(cfg.ClientAddr); isUnspecifiedHost(host) {
		cfg.AdvertiseHost, _, _ = net.SplitHostPort(r.advertiseAddr())
	}
	return cfg, nil
}

// defaultEmbedAddrs derives the member's client and peer addresses from
// HTTPAddr: embedetcd.DefaultAddrs (HTTP port + 10000 and + 20000) when
// they fit below 65536. Otherwise, and for HTTP port 0 (tests, demos),
// free ports are picked on the first start and kept in DataDir, because an
// etcd member's URLs must not change across restarts; with port 0 the
// client port is any free port at every start (the others learn it from
// etcd's member list). Other nodes learn the chosen ports from the join
// answer and the member record.
func defaultEmbedAddrs(o *Options) (client, peer string, err error) {
	host, port, err := net.SplitHostPort(o.HTTPAddr)
	if err != nil {
		return "", "", err
	}
	if host == "" {
		host = "127.0.0.1" // etcd needs a concrete host to listen on
	}
	p, _ := strconv.Atoi(port)
	if p != 0 {
		// DefaultAddrs fails only when the derived ports pass 65535.
		if client, peer, err := embedetcd.DefaultAddrs(net.JoinHostPort(host, port)); err == nil {
			return client, peer, nil
		}
	}
	peer, err = keptFreeAddr(filepath.Join(o.DataDir, "etcd-peer-"+o.ClusterName), host)
	if err != nil || p == 0 {
		return net.JoinHostPort(host, "0"), peer, err
	}
	client, err = keptFreeAddr(filepath.Join(o.DataDir, "etcd-client-"+o.ClusterName), host)
	return client, peer, err
}

// keptFreeAddr returns the address saved in file, or picks a free port on
// host (outside the kernel's ephemeral range, so that no outgoing
// connection takes it before etcd binds it) and saves it there.
func keptFreeAddr(file, host string) (string, error) {
	if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
		return string(b), nil
	}
	addr, err := freeport.Addr(host)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(file, []byte(addr), 0o600); err != nil {
		return "", err
	}
	return addr, nil
}
