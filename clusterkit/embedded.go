package clusterkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/embedetcd"
)

// connect makes ck.cli: a client of Options.Etcd.Endpoints (external
// mode), of a new embedded member (bootstrap), or of the cluster that
// JoinAddr belongs to (join; this node also becomes an etcd voter in the
// background while the cluster has fewer than Embedded.MaxVoters).
func (ck *ClusterKit) connect(ctx context.Context) error {
	o := ck.opts
	if len(o.Etcd.Endpoints) > 0 {
		cli, err := ck.newClient(o.Etcd.Endpoints)
		if err != nil {
			return err
		}
		ck.cli = cli
		return ck.ping(ctx)
	}
	cfg, err := ck.embedConfig()
	if err != nil {
		return err
	}
	if o.JoinAddr == "" || o.Bootstrap {
		start := time.Now()
		m, err := embedetcd.Start(ctx, cfg)
		if err != nil {
			return fmt.Errorf("clusterkit: start embedded etcd: %w", err)
		}
		ck.member.Store(m)
		ck.log.Info("embedded etcd started", zap.String("client_url", m.ClientURL()), zap.Duration("took", time.Since(start)))
		cli, err := ck.newClient([]string{m.ClientURL()})
		if err != nil {
			return err
		}
		ck.cli = cli
		return nil
	}

	endpoints, err := ck.requestJoin(ctx)
	if err != nil {
		return err
	}
	cli, err := ck.newClient(endpoints)
	if err != nil {
		return err
	}
	ck.cli = cli
	if err := ck.ping(ctx); err != nil {
		return err
	}
	// A node with member data restarts as that member (or joins anew if
	// it was removed); a new node becomes a voter while there are fewer
	// than MaxVoters. Either way this node goes on through the others'
	// endpoints at once and its member (re)joins in the background, so a
	// start never waits for etcd's own member start-up (up to its request
	// timeout when the restarted member is slow to find its leader).
	if !embedetcd.HasData(cfg.Dir) {
		voters, err := ck.voterCount(ctx)
		if err != nil {
			return err
		}
		if voters >= o.Embedded.MaxVoters {
			ck.log.Info("etcd has enough voters; this node is a plain client", zap.Int("voters", voters))
			return nil
		}
	}
	rt := ck.rt()
	rt.joinWG.Add(1)
	go func() {
		defer rt.joinWG.Done()
		start := time.Now()
		m, err := embedetcd.Join(rt.joinCtx, cfg, endpoints)
		if err != nil {
			if rt.joinCtx.Err() == nil {
				ck.log.Warn("joining etcd as a voter failed; staying a plain client", zapErr(err))
			}
			return
		}
		ck.member.Store(m)
		ck.cli.SetEndpoints(append(endpoints, m.ClientURL())...)
		ck.log.Info("embedded etcd joined as voter", zap.String("client_url", m.ClientURL()), zap.Duration("took", time.Since(start)))
	}()
	return nil
}

// embedConfig derives the embedded member's config from the options.
func (ck *ClusterKit) embedConfig() (embedetcd.Config, error) {
	o := ck.opts
	cfg := embedetcd.Config{
		Name:       o.NodeID,
		Dir:        filepath.Join(o.DataDir, "etcd-"+o.ClusterName),
		ClientAddr: o.Embedded.ClientAddr,
		PeerAddr:   o.Embedded.PeerAddr,
		TickMs:     uint(o.Embedded.TickInterval / time.Millisecond),
		ElectionMs: uint(o.Embedded.ElectionTimeout / time.Millisecond),
		Logger:     ck.log.Named("etcd"),
		// Members only ever join as learners and are promoted once in sync,
		// and leaveEtcd checks the quorum itself before a node removes its
		// own member; the strict check's 5 s guard after every peer connect
		// would only slow every join and graceful leave down.
		DisableStrictReconfigCheck: true,
	}
	if cfg.ClientAddr == "" || cfg.PeerAddr == "" {
		client, peer, err := ck.defaultEmbedAddrs()
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
	host, _, _ := net.SplitHostPort(cfg.ClientAddr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		advHost, _, _ := net.SplitHostPort(ck.advertiseAddr())
		cfg.AdvertiseHost = advHost
	}
	return cfg, nil
}

// defaultEmbedAddrs uses embedetcd.DefaultAddrs (HTTP port + 10000 and
// + 20000) when Options.HTTPAddr names a port. With port 0 (tests, demos)
// the client port is any free port and the peer port a free one picked
// once and kept in DataDir, because an etcd member's peer URL must not
// change across restarts.
func (ck *ClusterKit) defaultEmbedAddrs() (client, peer string, err error) {
	host, port, err := net.SplitHostPort(ck.opts.HTTPAddr)
	if err != nil {
		return "", "", err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if p, _ := strconv.Atoi(port); p != 0 {
		return embedetcd.DefaultAddrs(net.JoinHostPort(host, port))
	}
	client = net.JoinHostPort(host, "0")
	saved := filepath.Join(ck.opts.DataDir, "etcd-peer-"+ck.opts.ClusterName)
	if b, err := os.ReadFile(saved); err == nil && len(b) > 0 {
		return client, string(b), nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", "", err
	}
	peer = l.Addr().String()
	l.Close()
	if err := os.MkdirAll(ck.opts.DataDir, 0o700); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(saved, []byte(peer), 0o600); err != nil {
		return "", "", err
	}
	return client, peer, nil
}

func (ck *ClusterKit) newClient(endpoints []string) (*clientv3.Client, error) {
	o := ck.opts
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: o.Etcd.DialTimeout,
		TLS:         o.Etcd.TLS,
		Username:    o.Etcd.Username,
		Password:    o.Etcd.Password,
		Logger:      ck.log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
		// Keep-alives notice a dead connection so that a request fails over
		// to another endpoint; etcd refuses pings more often than its
		// --grpc-keepalive-min-time (5 s by default).
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	}
	if len(o.Etcd.Endpoints) == 0 {
		// Embedded mode: learn the client URLs of members that join later
		// (or leave), so that this node never depends on the member it
		// joined through. External etcd may sit behind addresses its
		// members do not advertise, so its endpoints stay as configured.
		cfg.AutoSyncInterval = 10 * time.Second
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("clusterkit: connect to etcd %v: %w", endpoints, err)
	}
	return cli, nil
}

// ping checks that etcd answers before going on.
func (ck *ClusterKit) ping(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, ck.opts.Etcd.DialTimeout)
	defer cancel()
	if _, err := ck.cli.Get(rctx, ck.keys.config()); err != nil {
		ck.metrics.etcdErrors.WithLabelValues("ping").Inc()
		return fmt.Errorf("clusterkit: etcd %v does not answer: %w", ck.cli.Endpoints(), err)
	}
	return nil
}

func (ck *ClusterKit) voterCount(ctx context.Context) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := ck.cli.MemberList(rctx)
	if err != nil {
		return 0, fmt.Errorf("clusterkit: list etcd members: %w", err)
	}
	n := 0
	for _, m := range resp.Members {
		if !m.IsLearner {
			n++
		}
	}
	return n, nil
}

// joinRequest and joinResponse are the join endpoint's JSON.
type joinRequest struct {
	NodeID  string `json:"node_id"`
	Cluster string `json:"cluster"`
}

type joinResponse struct {
	Cluster   string   `json:"cluster"`
	Endpoints []string `json:"endpoints"`
}

// joinClient keeps no idle connections: a join is one request per node
// start, and a kept connection would outlive a stopped node.
var joinClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// requestJoin asks the node at JoinAddr for the etcd endpoints.
func (ck *ClusterKit) requestJoin(ctx context.Context) ([]string, error) {
	o := ck.opts
	body, _ := json.Marshal(joinRequest{NodeID: o.NodeID, Cluster: o.ClusterName})
	url := "http://" + o.JoinAddr + "/cluster/join"
	var lastErr error
	delay := 100 * time.Millisecond
	for attempt := 0; attempt < 10; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%w: JoinAddr %q: %v", ErrJoinFailed, o.JoinAddr, err)
		}
		req.Header.Set("Content-Type", "application/json")
		if o.ClusterToken != "" {
			req.Header.Set("Authorization", "Bearer "+o.ClusterToken)
		}
		resp, err := joinClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			cancel()
			switch {
			case resp.StatusCode == http.StatusUnauthorized:
				return nil, fmt.Errorf("%w: %w: %s refused the cluster token", ErrJoinFailed, ErrUnauthorized, o.JoinAddr)
			case resp.StatusCode != http.StatusOK:
				lastErr = fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, bytes.TrimSpace(b))
				if resp.StatusCode < 500 {
					return nil, fmt.Errorf("%w: %v", ErrJoinFailed, lastErr)
				}
			default:
				var jr joinResponse
				if err := json.Unmarshal(b, &jr); err != nil || len(jr.Endpoints) == 0 {
					return nil, fmt.Errorf("%w: %s answered without etcd endpoints", ErrJoinFailed, url)
				}
				if jr.Cluster != o.ClusterName {
					return nil, fmt.Errorf("%w: %s serves cluster %q, this node is configured for %q", ErrJoinFailed, o.JoinAddr, jr.Cluster, o.ClusterName)
				}
				return jr.Endpoints, nil
			}
		} else {
			cancel()
			lastErr = err
		}
		if !sleepCtx(ctx, delay) {
			break
		}
		delay = min(2*delay, 2*time.Second)
	}
	if ctx.Err() != nil {
		lastErr = errors.Join(lastErr, ctx.Err())
	}
	return nil, fmt.Errorf("%w: JoinAddr %q: %v", ErrJoinFailed, o.JoinAddr, lastErr)
}

// etcdEndpoints lists the client URLs of the started etcd members, for the
// join endpoint.
func (ck *ClusterKit) etcdEndpoints(ctx context.Context, cli *clientv3.Client) ([]string, error) {
	if len(ck.opts.Etcd.Endpoints) > 0 {
		return ck.opts.Etcd.Endpoints, nil
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := cli.MemberList(rctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range resp.Members {
		if !m.IsLearner {
			out = append(out, m.ClientURLs...)
		}
	}
	return out, nil
}

// leaveEtcd removes this node's embedded member from the etcd cluster when
// other voters remain, so that the rest keeps its quorum without it (a
// stopped but still listed voter counts against the quorum). A restart
// joins again as a new member; its old data dir is moved aside.
func (ck *ClusterKit) leaveEtcd(ctx context.Context) error {
	m := ck.member.Load()
	if m == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := ck.cli.MemberList(rctx)
	if err != nil {
		return fmt.Errorf("clusterkit: leave etcd: list members: %w", err)
	}
	voters, healthy := 0, 0
	for _, mm := range resp.Members {
		if mm.IsLearner {
			continue
		}
		voters++
		if mm.ID == m.ID() || len(mm.ClientURLs) == 0 {
			continue
		}
		sctx, cancel := context.WithTimeout(rctx, 500*time.Millisecond)
		if _, err := ck.cli.Status(sctx, mm.ClientURLs[0]); err == nil {
			healthy++
		}
		cancel()
	}
	// Removing this voter is safe when the healthy others form a quorum of
	// the smaller cluster; otherwise keep the member (and its data).
	if voters <= 1 || healthy < (voters-1)/2+1 {
		if voters > 1 {
			ck.log.Warn("not leaving the etcd cluster: the others would lack a quorum", zap.Int("voters", voters), zap.Int("healthy_others", healthy))
		}
		return nil
	}
	others := voters - 1
	// Talk to the other members: this one is about to go.
	var eps []string
	for _, mm := range resp.Members {
		if mm.ID != m.ID() {
			eps = append(eps, mm.ClientURLs...)
		}
	}
	ck.cli.SetEndpoints(eps...)
	if _, err := ck.cli.MemberRemove(rctx, m.ID()); err != nil {
		return fmt.Errorf("clusterkit: leave etcd: remove member %x: %w", m.ID(), err)
	}
	ck.log.Info("left the etcd cluster", zap.Int("voters_left", others))
	return nil
}
