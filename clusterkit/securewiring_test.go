package clusterkit_test

import (
	"context"
	"crypto/tls"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// servedSerial returns the serial of the certificate ck's HTTP port
// presents for server name sni ("" = none).
func servedSerial(t *testing.T, ck *clusterkit.ClusterKit, sni string) *big.Int {
	t.Helper()
	c, err := tls.Dial("tcp", clustertest.Addr(ck), &tls.Config{InsecureSkipVerify: true, ServerName: sni})
	if err != nil {
		t.Fatalf("TLS to %s (SNI %q): %v", clustertest.Addr(ck), sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// presentedByEtcdClient opens a new connection with ck's etcd client to a
// TLS listener of the test serving server (a certificate of the cluster
// CA, which the client verifies before it presents its own) and returns
// the serial of the client certificate it presents.
func presentedByEtcdClient(t *testing.T, ck *clusterkit.ClusterKit, server tls.Certificate) *big.Int {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{ClientAuth: tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{server}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *big.Int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.Handshake() != nil || len(tc.ConnectionState().PeerCertificates) == 0 {
			got <- nil
			return
		}
		got <- tc.ConnectionState().PeerCertificates[0].SerialNumber
	}()
	conn, err := clusterkit.EtcdDial(ck, "https://"+ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Connect()
	select {
	case s := <-got:
		if s == nil {
			t.Fatal("the etcd client's handshake presented no certificate")
		}
		return s
	case <-time.After(15 * time.Second):
		t.Fatal("the etcd client never connected")
	}
	return nil
}

// TestCertRenewalEndToEnd: a joined node of a secure embedded cluster
// renews its certificate while running. It keeps no CA key (removed from
// its DataDir, as on a node that got none), so node-1 signs it through
// POST /cluster/certificate on its real HTTPS port, authenticated by
// node-2's current certificate (self-signing: TestCertSelfRenewal).
// Without a restart node-2's HTTP port serves the new certificate (plain
// name and the join name), its etcd client presents it on a new
// connection, and etcd accepts that connection.
func TestCertRenewalEndToEnd(t *testing.T) {
	dataDirs := map[string]string{}
	nodes := clustertest.Form(t, 2, func(o *clusterkit.Options) { dataDirs[o.NodeID] = o.DataDir }, nil)
	n2 := nodes[1]
	server, _, err := pki.Dir(filepath.Join(dataDirs["node-1"], "tls")).LoadNode()
	if err != nil {
		t.Fatal(err)
	}
	dir2 := pki.Dir(filepath.Join(dataDirs["node-2"], "tls"))
	if err := os.Remove(dir2.Path(pki.CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	old := servedSerial(t, n2, "")
	if got := presentedByEtcdClient(t, n2, server); got.Cmp(old) != 0 {
		t.Fatalf("before renewal the etcd client presented serial %v, the HTTP port serves %v", got, old)
	}
	clusterkit.RenewCertificateNow(n2)
	clustertest.Eventually(t, 20*time.Second, func() bool { return servedSerial(t, n2, "").Cmp(old) != 0 },
		"node-2's HTTP port still serves the old certificate")
	renewed := servedSerial(t, n2, "")
	if dir2.HasCA() {
		t.Fatal("node-2 has a CA key again: it did not renew through node-1")
	}
	if got := servedSerial(t, n2, "clusterkit-join"); got.Cmp(renewed) != 0 {
		t.Fatalf("the join name serves serial %v, want the renewed %v", got, renewed)
	}
	if got := presentedByEtcdClient(t, n2, server); got.Cmp(renewed) != 0 {
		t.Fatalf("the etcd client presents serial %v after renewal, want the renewed %v", got, renewed)
	}
	for _, ep := range clusterkit.EtcdEndpoints(n2) {
		conn, err := clusterkit.EtcdDial(n2, ep)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = pb.NewKVClient(conn).Range(ctx, &pb.RangeRequest{Key: []byte("x")}, grpcWaitForReady)
		cancel()
		conn.Close()
		if err != nil {
			t.Fatalf("etcd %s refused a new connection with the renewed certificate: %v", ep, err)
		}
	}
	// The cluster keeps working: an admin call over https to node-1.
	if code, b := clustertest.Admin(t, nodes[0], http.MethodPost, "/rebalance", ""); code != http.StatusAccepted {
		t.Fatalf("rebalance after renewal: %d %s", code, b)
	}
}

// TestRotateGeneratedSecret: a bootstrap node without ClusterToken
// generated its secret; RotateSecret replaces that one, after which
// JoinToken says the node's secret is stale and GET /cluster/token hands
// the rotated token to a caller presenting it.
func TestRotateGeneratedSecret(t *testing.T) {
	nodes := clustertest.Form(t, 2, func(o *clusterkit.Options) {
		if o.NodeID == "node-1" {
			o.ClusterToken = ""
		}
	}, nil)
	n1 := nodes[0]
	before := clustertest.JoinToken(t, n1)
	cl := clustertest.HTTPSClient(t, n1)
	rot, err := n1.RotateSecret(contextTimeout(t, 30*time.Second), time.Hour)
	if err != nil {
		t.Fatalf("RotateSecret on a node with a generated secret: %v", err)
	}
	if _, err := n1.JoinToken(); !errors.Is(err, clusterkit.ErrUnauthorized) {
		t.Fatalf("JoinToken after rotation: %v, want ErrUnauthorized", err)
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{before, http.StatusConflict}, {rot.Token, http.StatusOK}, {"wrong", http.StatusUnauthorized}} {
		for _, n := range nodes {
			req, _ := http.NewRequest(http.MethodGet, "https://"+clustertest.Addr(n)+"/cluster/token", nil)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: GET /cluster/token with %.12s…: %d, want %d", n.GetMyNodeID(), tc.token, resp.StatusCode, tc.want)
			}
		}
	}
}

// grpcWaitForReady waits for the new connection instead of failing fast.
var grpcWaitForReady = grpc.WaitForReady(true)
