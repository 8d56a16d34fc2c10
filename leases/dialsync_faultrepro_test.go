//go:build faultrepro

package leases

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
)

// TestRenewerDialRacesAutoSync reproduces the data race behind the fault
// tests' exit code 66 under -race: clientv3.Client.Dial reads
// c.endpoints[0] without the client's lock (client.go, dial), while the
// client's auto-sync goroutine (Config.AutoSyncInterval, which clusterkit
// set in embedded mode) rewrites the endpoints with SetEndpoints. The
// renewer dials through the client whenever it needs a connection to an
// endpoint. Run with -race -tags faultrepro: the race detector fails the
// test. It stays behind the tag because it uses the client the way the
// unfixed code did (auto-sync on, Dial unguarded): the fix (clusterkit's
// endpointSync, WithDialer) removes the client's auto-sync instead.
func TestRenewerDialRacesAutoSync(t *testing.T) {
	srv := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second,
		AutoSyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	rn := newRenewer(cli, nil, 1, 2*time.Second, time.Second)
	defer rn.close()
	ep := srv.Endpoints()[0]
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if _, err := rn.conn(ep); err != nil {
			t.Fatal(err)
		}
		rn.drop(ep)
	}
}
