// Command kvstore runs one node of a replicated key-value store built on
// ClusterKit (package store): GET, PUT and DELETE /kv/{key} on any node.
//
//	go run ./examples/kvstore                                              # node-1, a one-node cluster
//	go run ./examples/kvstore -id node-2 -http 127.0.0.1:7102 -api 127.0.0.1:7202 -join 127.0.0.1:7101
//	curl -X PUT --data world http://127.0.0.1:7201/kv/hello; curl http://127.0.0.1:7202/kv/hello
//
// run.sh forms a cluster of processes and puts it through a join, a crash
// and a restart; go run ./examples/demo narrates the same with timings.
package main

import (
	"os"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
)

func main() { os.Exit(store.Main(os.Args[1:], os.Stdout, os.Stderr)) }
