package examples_test

import (
	"context"
	"database/sql"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
)

// An application probe: three failed pings in a row mark the node
// unhealthy in its member record (the cluster reports "degraded"); one
// success marks it healthy again. With HealthCheck enabled and no LeaseTTL,
// the lease TTL is Interval × FailureThreshold (here 3 s).
func Example_healthProbe() {
	var db *sql.DB // the application's own dependency
	opts := clusterkit.Options{
		NodeID:      "node-1",
		HTTPAddr:    "127.0.0.1:7100",
		HealthCheck: clusterkit.HealthCheckConfig{Enabled: true, Interval: time.Second, FailureThreshold: 3},
		HealthProbe: func(ctx context.Context) error { return db.PingContext(ctx) },
	}
	_, _ = clusterkit.New(opts)
}
