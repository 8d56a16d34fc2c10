// Command kvstore is a replicated key-value store built on ClusterKit.
//
// Run one node per process (see run.sh), or run the self-contained demo,
// which forms a cluster inside this process on embedded etcd and walks
// through a join, a crash and a rejoin while checking that no key is lost:
//
//	go run ./examples/kvstore -demo
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

func main() {
	var (
		demo     = flag.Bool("demo", false, "run the self-contained demo and exit")
		id       = flag.String("id", "", "node ID")
		httpAddr = flag.String("http", "127.0.0.1:7101", "ClusterKit HTTP address (its etcd uses port+10000 and port+20000)")
		apiAddr  = flag.String("api", "127.0.0.1:7201", "key-value API address")
		join     = flag.String("join", "", "HTTP address of a node to join")
		dataDir  = flag.String("data", "", "data directory (default clusterkit-data/<id>)")
		token    = flag.String("token", "", "cluster token")
	)
	flag.Parse()
	logger := log.New(os.Stdout, "", log.Ltime|log.Lmicroseconds)
	if *demo {
		if err := runDemo(logger); err != nil {
			logger.Fatalf("demo failed: %v", err)
		}
		return
	}
	if *id == "" {
		logger.Fatal("-id is required (or -demo)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := startNode(ctx, logger, clusterkit.Options{
		NodeID: *id, HTTPAddr: *httpAddr, JoinAddr: *join, DataDir: *dataDir, ClusterToken: *token,
	}, *apiAddr)
	if err != nil {
		logger.Fatal(err)
	}
	logger.Printf("%s: serving keys on http://%s/kv/{key}", *id, node.api)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node.stop(sctx)
}

// node is one running store: ClusterKit plus the key-value API.
type node struct {
	ck    *clusterkit.ClusterKit
	store *Store
	api   string
	srv   *http.Server
}

// startNode listens on apiAddr, publishes it as the "kv" service, and
// starts ClusterKit with the store's hooks.
func startNode(ctx context.Context, logger *log.Logger, opts clusterkit.Options, apiAddr string) (*node, error) {
	ln, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return nil, err
	}
	opts.Services = map[string]string{"kv": ln.Addr().String()}
	ck, err := clusterkit.New(opts)
	if err != nil {
		ln.Close()
		return nil, err
	}
	store := NewStore(ck, logger)
	logHooks(ck, logger)
	n := &node{ck: ck, store: store, api: ln.Addr().String(), srv: &http.Server{Handler: store.Handler(), ReadHeaderTimeout: 5 * time.Second}}
	go n.srv.Serve(ln)
	if err := ck.Start(ctx); err != nil {
		n.srv.Close()
		return nil, err
	}
	return n, nil
}

func (n *node) stop(ctx context.Context) {
	n.ck.Stop(ctx)
	n.srv.Close()
}

// halt simulates a crash: no goodbye, the others notice when its lease
// expires.
func (n *node) halt() {
	n.ck.Halt()
	n.srv.Close()
}

// logHooks prints the cluster events as this node sees them.
func logHooks(ck *clusterkit.ClusterKit, logger *log.Logger) {
	me := ck.GetMyNodeID()
	ck.OnNodeJoin(func(e *clusterkit.NodeJoinEvent) {
		logger.Printf("%s: [join] %s joined (cluster size %d, bootstrap %v)", me, e.Node.ID, e.ClusterSize, e.IsBootstrap)
	})
	ck.OnNodeRejoin(func(e *clusterkit.NodeRejoinEvent) {
		logger.Printf("%s: [rejoin] %s is back after %v; it held %d partitions", me, e.Node.ID, e.OfflineDuration.Round(time.Millisecond), len(e.PartitionsBeforeLeave))
	})
	ck.OnNodeLeave(func(e *clusterkit.NodeLeaveEvent) {
		logger.Printf("%s: [leave] %s left (%s); it led %d and replicated %d partitions", me, e.Node.ID, e.Reason, len(e.PartitionsOwned), len(e.PartitionsReplica))
	})
	ck.OnRebalanceStart(func(e *clusterkit.RebalanceEvent) {
		logger.Printf("%s: [rebalance #%d] start (trigger %s by %s, %d moves)", me, e.ID, e.Trigger, e.TriggerNodeID, e.PartitionsToMove)
	})
	ck.OnRebalanceComplete(func(e *clusterkit.RebalanceEvent, d time.Duration) {
		logger.Printf("%s: [rebalance #%d] complete in %v", me, e.ID, d.Round(time.Millisecond))
	})
	ck.OnClusterHealthChange(func(e *clusterkit.ClusterHealthEvent) {
		logger.Printf("%s: [health] %s %v", me, e.Status, e.Reasons)
	})
}
