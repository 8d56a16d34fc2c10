package clusterkit

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// connect makes r.cli: a client of Options.Etcd.Endpoints (external
// mode), of a new embedded member (bootstrap), or of the cluster that
// JoinAddr belongs to (join; this node also becomes an etcd voter in the
// background while the cluster has fewer than Embedded.MaxVoters).
func (r *run) connect(ctx context.Context) error {
	o := &r.ck.opts
	if len(o.Etcd.Endpoints) > 0 {
		return r.dial(ctx, o.Etcd.Endpoints)
	}
	cfg, err := r.embedConfig()
	if err != nil {
		return err
	}
	if o.JoinAddr == "" || o.Bootstrap {
		return r.startEmbedded(ctx, cfg)
	}
	endpoints, err := requestJoin(ctx, o)
	if err != nil {
		return err
	}
	if err := r.dial(ctx, endpoints); err != nil {
		return err
	}
	return r.joinEmbedded(ctx, cfg, endpoints)
}

// dial makes the client of endpoints and checks that etcd answers.
func (r *run) dial(ctx context.Context, endpoints []string) error {
	cli, err := r.newClient(endpoints)
	if err != nil {
		return err
	}
	r.cli = cli
	rctx, cancel := context.WithTimeout(ctx, r.ck.opts.Etcd.DialTimeout)
	defer cancel()
	if _, err := cli.Get(rctx, r.ck.keys.config()); err != nil {
		r.ck.metrics.etcdErrors.WithLabelValues("ping").Inc()
		return fmt.Errorf("clusterkit: etcd %v does not answer: %w", cli.Endpoints(), err)
	}
	return nil
}

func (r *run) newClient(endpoints []string) (*clientv3.Client, error) {
	o := &r.ck.opts
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: o.Etcd.DialTimeout,
		TLS:         o.Etcd.TLS,
		Username:    o.Etcd.Username,
		Password:    o.Etcd.Password,
		Logger:      r.ck.log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
		// Keep-alives notice a dead connection so that a request fails over
		// to another endpoint; etcd refuses pings more often than its
		// --grpc-keepalive-min-time (5 s by default).
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		DialOptions:          reconnectOptions,
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

// voterCount counts etcd's voting members.
func voterCount(ctx context.Context, cli *clientv3.Client) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := cli.MemberList(rctx)
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

// etcdEndpoints lists the client URLs of the started etcd members, for the
// join endpoint: the embedded members' own (free ports chosen on a first
// start included), or the configured external endpoints.
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
func (r *run) leaveEtcd(ctx context.Context) error {
	m := r.member.Load()
	if m == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := r.cli.MemberList(rctx)
	if err != nil {
		return fmt.Errorf("clusterkit: leave etcd: list members: %w", err)
	}
	voters, healthy := 0, 0
	var others []string // the other members' client URLs
	for _, mm := range resp.Members {
		if mm.ID != m.ID() {
			others = append(others, mm.ClientURLs...)
		}
		if mm.IsLearner {
			continue
		}
		voters++
		if mm.ID != m.ID() && len(mm.ClientURLs) > 0 && r.memberAnswers(rctx, mm.ClientURLs[0]) {
			healthy++
		}
	}
	// Removing this voter is safe when the healthy others form a quorum of
	// the smaller cluster; otherwise keep the member (and its data).
	if voters <= 1 || healthy < (voters-1)/2+1 {
		if voters > 1 {
			r.ck.log.Warn("not leaving the etcd cluster: the others would lack a quorum", zap.Int("voters", voters), zap.Int("healthy_others", healthy))
		}
		return nil
	}
	r.cli.SetEndpoints(others...) // talk to the others: this member is about to go
	if _, err := r.cli.MemberRemove(rctx, m.ID()); err != nil {
		return fmt.Errorf("clusterkit: leave etcd: remove member %x: %w", m.ID(), err)
	}
	r.ck.log.Info("left the etcd cluster", zap.Int("voters_left", voters-1))
	return nil
}

// memberAnswers reports whether the etcd member at url answers a status
// request within 500 ms.
func (r *run) memberAnswers(ctx context.Context, url string) bool {
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err := r.cli.Status(sctx, url)
	return err == nil
}
