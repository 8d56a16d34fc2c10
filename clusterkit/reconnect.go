package clusterkit

import (
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

// reconnectOptions make the etcd client retry a lost connection at least
// every second. gRPC's default backoff grows to 120 s: after a 20 s etcd
// outage its next attempt came up to 6.5 s after etcd was back, long
// enough for every node's old lease to expire (etcd renews them for one
// TTL when it restarts) before the node could take its record over.
var reconnectOptions = []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: time.Second,
})}

// testDialOptions are added to every etcd client's options; only tests set
// them (export_test.go), to inject faults between a node and etcd.
var testDialOptions []grpc.DialOption
