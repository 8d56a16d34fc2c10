// Command clusterkit operates a ClusterKit cluster through any node's HTTP
// API: it shows the cluster (status, members, partitions, where a key
// lives), follows it live (watch), and runs the admin operations
// (rebalance, remove) with the cluster token. The read-only commands can
// also read the cluster straight from etcd (--etcd), with a client
// certificate from 'clusterkit cert issue' for a secure cluster.
//
//	go install github.com/clusterkit-go/clusterkit/cmd/clusterkit@latest
//	export CLUSTERKIT_NODE=10.0.0.5:8080 CLUSTERKIT_TOKEN=…
//	clusterkit status
//	clusterkit members -o json
//	clusterkit cert issue --name ops --out ~/.clusterkit
//	clusterkit --etcd https://10.0.0.5:18080 --cert ~/.clusterkit/client.crt \
//		--key ~/.clusterkit/client.key --cacert ~/.clusterkit/ca.crt watch
//
// Exit codes: 0 success, 1 the operation failed (the message says what to
// do), 2 wrong usage (unknown command or flag, missing argument or token).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
