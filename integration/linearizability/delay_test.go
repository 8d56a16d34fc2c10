package linearizability

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// settleAway waits until the running nodes agree on a map without a node
// that lost its lease (killed or frozen). ClusterKit holds such a node's
// slots for its RebalanceDelay (30 s) before it places new replicas; the
// scenarios would spend most of their time waiting for it. So, every
// second until the map settles, the leader is asked to end the delay
// (POST /rebalance/end-delay, an operator's action): the replicas are
// placed and the data handed off exactly as when the delay runs out, only
// sooner. A request made before the leader saw the lease expire ends
// nothing, so it is repeated. The requests run beside the wait (one can
// take its full 5 s when it goes through a frozen etcd member), so the
// settled map is seen as soon as it is: for an etcd voter's node the
// leader removes its member 5 s (goneBound) after the delay ended, and the
// scenario restarts or thaws it right after the map settled, as it did
// when the delay ran out.
func (f *faults) settleAway(ctx context.Context, what string) error {
	begin := time.Now()
	asking, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for asking.Err() == nil {
			if err := f.endDelay(asking); err != nil && asking.Err() == nil {
				f.t.Logf("  %s: end-delay: %v", what, err)
			}
			sleep(asking, time.Second)
		}
	})
	_, err := f.cluster.WaitSettled(ctx)
	stop()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	f.t.Logf("  %s: settled after %v", what, time.Since(begin).Round(time.Millisecond))
	return nil
}

// endDelay posts /rebalance/end-delay to a running node over HTTPS (the
// cluster token is refused over plain HTTP), trusting the cluster's CA as
// node-1 stored it, and returns once the leader applied it.
func (f *faults) endDelay(ctx context.Context) error {
	_, pool, err := pki.Dir(filepath.Join(f.cluster.Dir(), "node-1", "tls")).LoadNode()
	if err != nil {
		return err
	}
	var addr string
	for _, n := range f.cluster.Running() {
		if !n.Frozen() {
			addr = n.HTTP
			break
		}
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer cl.CloseIdleConnections()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, "https://"+addr+"/rebalance/end-delay", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+clusterToken)
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST %s/rebalance/end-delay: %s: %s", addr, resp.Status, body)
	}
	return nil
}

// clusterToken is the ClusterToken localcluster gives every node.
const clusterToken = "localcluster"
