package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/clusterkit-go/clusterkit/embedetcd"
	"github.com/clusterkit-go/clusterkit/watcher"
)

// connect makes r.cli: a client of Options.Etcd.Endpoints (external
// mode), or of this node's embedded member and its cluster.
//
// In embedded mode a node whose data dir holds a member restarts that
// member first, without asking anyone (the join endpoint needs a quorum,
// which may need this very member: both dead voters of three restarted
// together). A member that was removed meanwhile has its data set aside
// and the node joins anew, like a node without data: through JoinAddr or
// the recorded peers (see joinEndpoints), becoming an etcd voter in the
// background while the cluster has fewer than Embedded.MaxVoters. With
// neither, it bootstraps a new cluster (the first start of the first
// node); so does Bootstrap.
func (r *run) connect(ctx context.Context) error {
	o := &r.ck.opts
	if len(o.Etcd.Endpoints) > 0 {
		return r.dial(ctx, o.Etcd.Endpoints)
	}
	cfg, err := r.embedConfig()
	if err != nil {
		return err
	}
	if err := r.connectEmbedded(ctx, cfg); err != nil {
		return err
	}
	r.wg.Go(r.recordPeersLoop)
	return nil
}

func (r *run) connectEmbedded(ctx context.Context, cfg embedetcd.Config) error {
	if err := r.loadTLS(); err != nil {
		return err
	}
	if embedetcd.HasData(cfg.Dir) {
		if r.ck.opts.secure() && r.tls == nil {
			return fmt.Errorf("%w: %s holds etcd data but %s no certificate: was the cluster made with InsecurePlaintext?",
				ErrTLS, cfg.Dir, tlsDir(&r.ck.opts))
		}
		err := r.startEmbedded(ctx, r.withTLS(cfg))
		if !errors.Is(err, embedetcd.ErrRemoved) {
			return err
		}
		r.ck.log.Warn("this node's etcd member was removed from the cluster; its data is set aside and it joins anew", zapErr(err))
	}
	if r.ck.opts.Bootstrap {
		return r.bootstrapEmbedded(ctx, cfg)
	}
	endpoints, err := r.joinEndpoints(ctx)
	if err != nil {
		return err
	}
	if endpoints == nil {
		return r.bootstrapEmbedded(ctx, cfg)
	}
	if err := r.dial(ctx, endpoints); err != nil {
		return err
	}
	return r.joinEmbedded(ctx, r.withTLS(cfg), endpoints)
}

// dial makes the client of endpoints and checks that etcd answers.
func (r *run) dial(ctx context.Context, endpoints []string) error {
	cli, err := r.newClient(endpoints)
	if err != nil {
		return err
	}
	r.setClient(cli)
	rctx, cancel := context.WithTimeout(ctx, r.ck.opts.Etcd.DialTimeout)
	defer cancel()
	if _, err := cli.Get(rctx, r.ck.keys.config()); err != nil {
		r.ck.metrics.etcdErrors.WithLabelValues("ping").Inc()
		if aerr := r.ck.etcdAccessError(endpoints, err); aerr != nil {
			return aerr
		}
		return fmt.Errorf("clusterkit: etcd %v does not answer: %w", cli.Endpoints(), err)
	}
	if len(r.ck.opts.Etcd.Endpoints) > 0 {
		return r.checkWritable(ctx)
	}
	return nil
}

func (r *run) newClient(endpoints []string) (*clientv3.Client, error) {
	o := &r.ck.opts
	cfg, err := etcdClientConfig(o.Etcd, endpoints, r.ck.log)
	if err != nil {
		return nil, err
	}
	cfg.DialKeepAliveTimeout = keepAliveTimeout(o.LeaseTTL)
	if allTCP(endpoints) {
		if r.conns == nil {
			r.conns = &connSet{}
		}
		cfg.DialOptions = append(slices.Clip(cfg.DialOptions), grpc.WithContextDialer(r.conns.dial))
	}
	if r.tls != nil {
		cfg.TLS = r.tls.clientConfig()
	}
	// No AutoSyncInterval: its SetEndpoints races clientv3's Dial (see
	// endpointGuard). In embedded mode the upkeep loop makes the client
	// follow the members instead (endpointGuard.follow), so that this node
	// never depends on the member it joined through. External etcd may
	// sit behind addresses its members do not advertise, so its endpoints
	// stay as configured.
	cli, err := clientv3.New(cfg)
	if err != nil {
		if aerr := r.ck.etcdAccessError(endpoints, err); aerr != nil {
			return nil, aerr
		}
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
// start included), or the configured external endpoints. The member list
// is serializable (answered by one member without a quorum), so that a
// node can learn the endpoints of a cluster that lost its quorum.
func (ck *ClusterKit) etcdEndpoints(ctx context.Context, cli *clientv3.Client) ([]string, error) {
	if len(ck.opts.Etcd.Endpoints) > 0 {
		return ck.opts.Etcd.Endpoints, nil
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := cli.MemberList(rctx, clientv3.WithSerializable())
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

// EtcdEndpoints returns the etcd client URLs of the cluster this node
// uses: the configured external endpoints, or the client URLs of the
// embedded voters (what a Router needs). It fails with ErrNotStarted
// unless the node is started.
func (ck *ClusterKit) EtcdEndpoints(ctx context.Context) ([]string, error) {
	r := ck.active.Load()
	if r == nil || !ck.started.Load() || r.cli == nil {
		return nil, ErrNotStarted
	}
	return ck.etcdEndpoints(ctx, r.cli)
}

// keepAliveTimeout is how long a node's etcd client waits for the answer
// to a transport keep-alive ping before it drops the connection: 2 s, or
// a third of the lease TTL when that is longer. A node whose lease allows
// a pause of ttl must not cut its connection (and then lose the lease
// while it dials again) over a shorter one; with many nodes on a loaded
// machine a dropped connection costs every node a re-registration.
func keepAliveTimeout(ttl time.Duration) time.Duration {
	return max(2*time.Second, ttl/3)
}

// stateReadTimeout bounds each read of the whole cluster prefix (the
// first one, and those after a compaction): the watcher's default 5 s,
// or the lease TTL when that is longer. At 16,384 partitions the read is
// about a megabyte (every map chunk, member and ready record), and a
// node that joins while etcd streams a change to hundreds of watchers
// would otherwise fail its Start though its lease tolerates the wait.
func stateReadTimeout(ttl time.Duration) time.Duration {
	return max(watcher.DefaultRequestTimeout, ttl)
}

// etcdClientConfig is the etcd client configuration for ec's credentials
// (Etcd.TLS, or the one built from Etcd.CertFile/KeyFile/CAFile, read
// now; errors wrap ErrTLS) and the given endpoints, shared by nodes and
// routers.
func etcdClientConfig(ec EtcdConfig, endpoints []string, log *zap.Logger) (clientv3.Config, error) {
	tlsCfg, err := ec.tlsConfig()
	if err != nil {
		return clientv3.Config{}, err
	}
	return clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: ec.DialTimeout,
		TLS:         tlsCfg,
		Username:    ec.Username,
		Password:    ec.Password,
		Logger:      log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
		// Keep-alives notice a dead connection so that a request fails over
		// to another endpoint; etcd refuses pings more often than its
		// --grpc-keepalive-min-time (5 s by default).
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		DialOptions:          append(slices.Clip(reconnectOptions), testDialOptions...),
	}, nil
}
