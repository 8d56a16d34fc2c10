// Command etcdfloor is the floor of a ClusterKit node's memory: a bare
// etcd client doing the least a node does (a lease kept alive, a watch of
// a prefix, a write on the lease every 100 ms, Prometheus metrics served
// over HTTP), with nothing of ClusterKit linked in. bench measures its
// resident set next to the nodes'.
//
//	go run ./integration/bench/etcdfloor -etcd http://127.0.0.1:2379
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	endpoint := flag.String("etcd", "", "etcd client URL")
	prefix := flag.String("prefix", "/etcdfloor/", "key prefix to watch and write under")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "etcdfloor: -etcd is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *endpoint, *prefix); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "etcdfloor: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, endpoint, prefix string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, promhttp.Handler())
	lease, err := cli.Grant(ctx, 5)
	if err != nil {
		return err
	}
	alive, err := cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return err
	}
	go func() {
		for range alive {
		}
	}()
	events := cli.Watch(ctx, prefix, clientv3.WithPrefix())
	go func() {
		for range events {
		}
	}()
	key := fmt.Sprintf("%s%d", prefix, os.Getpid())
	for i := 0; ; i++ {
		if _, err := cli.Put(ctx, key, fmt.Sprint(i), clientv3.WithLease(lease.ID)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
