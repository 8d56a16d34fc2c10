package store

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// Config configures one store node (the kvstore command's flags).
type Config struct {
	// ID is the node's ClusterKit NodeID.
	ID string
	// HTTPAddr is ClusterKit's address (its embedded etcd takes the port
	// + 10000 and + 20000 unless the port is 0); APIAddr the store's.
	// Port 0 picks free ports.
	HTTPAddr, APIAddr string
	// JoinAddr is the ClusterKit address of a node to join; empty: start
	// a new cluster.
	JoinAddr string
	// Etcd, if set, are the client URLs of an existing etcd cluster: the
	// node runs no embedded etcd (JoinAddr must then be empty).
	Etcd []string
	// DataDir holds the embedded etcd data (default
	// clusterkit-data/<ID>). The store itself keeps its data in memory.
	DataDir string
	Token   string
	Mode    Mode
	// Partitions, ReplicationFactor and LeaseTTL are ClusterKit's options
	// (0: ClusterKit's defaults).
	Partitions, ReplicationFactor int
	LeaseTTL                      time.Duration
	// Logger receives ClusterKit's and the store's logs (default none).
	Logger *zap.Logger
	// Events, if set, receives every cluster event this node sees.
	Events func(Event)
}

// RegisterFlags binds c's fields to flags on fs, with the kvstore
// command's defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ID, "id", "node-1", "node ID")
	fs.StringVar(&c.HTTPAddr, "http", "127.0.0.1:7101", "ClusterKit HTTP address; its embedded etcd uses port+10000 and port+20000 (port 0: free ports)")
	fs.StringVar(&c.APIAddr, "api", "127.0.0.1:7201", "key-value API address (port 0: a free port)")
	fs.StringVar(&c.JoinAddr, "join", "", "ClusterKit address of a node to join (empty: start a new cluster)")
	fs.Func("etcd", "comma-separated client URLs of an existing etcd cluster (empty: embedded etcd)", func(s string) error {
		c.Etcd = strings.Split(s, ",")
		return nil
	})
	fs.StringVar(&c.DataDir, "data", "", "data directory (default clusterkit-data/<id>)")
	fs.StringVar(&c.Token, "token", "", "cluster token")
	fs.Func("mode", "sync, async or server-side (default sync)", func(s string) error {
		m, err := ParseMode(s)
		c.Mode = m
		return err
	})
	fs.IntVar(&c.Partitions, "partitions", 0, "partition count (default 64)")
	fs.IntVar(&c.ReplicationFactor, "rf", 0, "replication factor (default 3)")
	fs.DurationVar(&c.LeaseTTL, "lease", 0, "lease TTL: how soon a crashed node is noticed (default 5s)")
}

// Node is a running store node: ClusterKit, the store, and the store's
// HTTP server.
type Node struct {
	ck    *clusterkit.ClusterKit
	store *Store
	srv   *http.Server
	api   string
	done  chan struct{} // closed when the server stopped serving
}

// StartNode listens on cfg.APIAddr, publishes that address as the node's
// "kv" service, and starts ClusterKit with the store's hooks. On error
// nothing is left running.
func StartNode(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.ID == "" {
		return nil, fmt.Errorf("%w: ID (-id) is required", ErrInvalidConfig)
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeSync
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("kvstore: listen on %s: %w", cfg.APIAddr, err)
	}
	ck, err := clusterkit.New(clusterkit.Options{
		NodeID: cfg.ID, HTTPAddr: cfg.HTTPAddr, JoinAddr: cfg.JoinAddr, DataDir: cfg.DataDir, Etcd: clusterkit.EtcdConfig{Endpoints: cfg.Etcd},
		ClusterToken: cfg.Token, PartitionCount: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor,
		LeaseTTL: cfg.LeaseTTL, Services: map[string]string{ServiceName: ln.Addr().String()}, Logger: cfg.Logger,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	store, err := New(ck, cfg.Mode, cfg.Logger.Named("kv"))
	if err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.Events != nil {
		reportEvents(ck, cfg.Events)
	}
	n := &Node{ck: ck, store: store, api: ln.Addr().String(), done: make(chan struct{}),
		srv: &http.Server{Handler: store.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}}
	go func() {
		defer close(n.done)
		n.srv.Serve(ln)
	}()
	if err := ck.Start(ctx); err != nil {
		n.srv.Close()
		<-n.done
		store.Close()
		return nil, err
	}
	// Start can return a moment before the lookups show this node (the
	// snapshot is published after the view Start waits on).
	for n.HTTPAddr() == "" && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if cfg.Events != nil {
		cfg.Events(Event{At: time.Now(), Node: cfg.ID, Kind: EventReady, API: n.api, HTTP: n.HTTPAddr()})
	}
	return n, nil
}

// ClusterKit returns the node's ClusterKit.
func (n *Node) ClusterKit() *clusterkit.ClusterKit { return n.ck }

// Store returns the node's store.
func (n *Node) Store() *Store { return n.store }

// APIAddr returns the store's bound address.
func (n *Node) APIAddr() string { return n.api }

// HTTPAddr returns ClusterKit's advertised address (the JoinAddr for
// other nodes).
func (n *Node) HTTPAddr() string { return n.ck.GetCluster().NodeAddr(n.ck.GetMyNodeID()) }

// Stop leaves the cluster gracefully: the store stops taking client
// requests, ClusterKit leaves (the others promote replicas at once), then
// the server and the store stop. ctx bounds the goodbye.
func (n *Node) Stop(ctx context.Context) error {
	n.store.Drain()
	err := n.ck.Stop(ctx)
	n.shutdown()
	return err
}

// Halt stops the node as a crash would: no goodbye, the others notice
// when its lease expires.
func (n *Node) Halt() {
	n.srv.Close()
	n.ck.Halt()
	n.shutdown()
}

func (n *Node) shutdown() {
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if err := n.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		n.srv.Close()
	}
	cancel()
	<-n.done
	n.store.Close()
}
