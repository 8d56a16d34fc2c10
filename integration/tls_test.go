package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// Secure-by-default tests (issue 14) against cknode processes with
// default options: mutual TLS on the embedded etcd, joins that
// authenticate both ways, certificates kept in DataDir for restarts.

// tlsRequest sends one HTTP/1.1 request over TLS with cfg and returns the
// status line, or the error of the handshake, write or read.
func tlsRequest(addr string, cfg *tls.Config, method, path, body string) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, path, addr, len(body), body)
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func tlsDirOf(n *nodeProc) pki.Dir { return pki.Dir(filepath.Join(n.dir, "data", "tls")) }

func TestSecureClusterOfProcesses(t *testing.T) {
	c, nodes := formEmbedded(t, 3)
	tok, err := pki.ParseToken(nodes[0].token)
	if err != nil || tok.Pin == "" {
		t.Fatalf("n1's join token %q: %v; want ck1.<pin>.<secret>", nodes[0].token, err)
	}
	for _, n := range nodes {
		if loose, err := tlsDirOf(n).Permissions(); err != nil || len(loose) > 0 {
			t.Fatalf("%s: DataDir/tls not owner-only: %v, %v", n.id, loose, err)
		}
		if !tlsDirOf(n).HasNode() {
			t.Fatalf("%s: no certificate in DataDir/tls", n.id)
		}
	}

	// The etcd members join in the background (learner, then voter):
	// wait for all three, through a client with a node certificate.
	cli := runningEtcdClient(t, nodes)
	var resp *clientv3.MemberListResponse
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err = cli.MemberList(context.Background())
		if err == nil && len(resp.Members) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cli.Close()
	if err != nil || len(resp.Members) != 3 {
		t.Fatalf("etcd members with a node certificate: %v, %v", resp, err)
	}
	member := nodes[1].etcdTLS()
	noCert := &tls.Config{InsecureSkipVerify: true}
	type probe struct {
		name, addr, method, path, body string
		cfg                            *tls.Config
		ok                             bool
	}
	var probes []probe
	// The etcd client ports speak gRPC only: a client without a
	// certificate of the cluster CA can neither read nor write there.
	for _, n := range nodes {
		t.Run(n.id+" client port, no certificate", func(t *testing.T) {
			bare, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://" + n.etcd}, TLS: noCert,
				DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				return // refused while dialing: fine
			}
			defer bare.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, err := bare.Get(ctx, "/clusterkit/", clientv3.WithPrefix()); err == nil {
				t.Fatal("read without a certificate succeeded")
			}
			if _, err := bare.Put(ctx, "/clusterkit/default/map/meta", "x"); err == nil {
				t.Fatal("write without a certificate succeeded")
			}
		})
	}
	for _, m := range resp.Members {
		u, err := url.Parse(m.PeerURLs[0])
		if err != nil || u.Scheme != "https" {
			t.Fatalf("peer URL %v: want https", m.PeerURLs)
		}
		probes = append(probes,
			probe{m.Name + " peer port, node certificate", u.Host, "GET", "/members", "", member, true},
			probe{m.Name + " peer port, no certificate", u.Host, "GET", "/members", "", noCert, false})
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			status, err := tlsRequest(p.addr, p.cfg, p.method, p.path, p.body)
			if p.ok && (err != nil || !strings.Contains(status, " 200 ")) {
				t.Fatalf("%s %s = %q, %v; want 200", p.method, p.path, status, err)
			}
			if !p.ok && err == nil {
				t.Fatalf("%s %s answered %q; want the TLS handshake refused", p.method, p.path, status)
			}
		})
	}

	other, err := pki.NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, token, want string }{
		{"wrong-secret", "ck1." + tok.Pin + ".wrong", "unauthorized"},
		{"wrong-pin", "ck1." + other.Fingerprint() + "." + tok.Secret, "does not match the token's CA pin"},
	} {
		t.Run("join with "+tc.id, func(t *testing.T) {
			n := c.spawn(tc.id, "-token", tc.token)
			var got string
			select {
			case got = <-n.started:
			case <-time.After(90 * time.Second):
				t.Fatalf("%s: no answer to its Start", tc.id)
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("%s: Start error %q, want it to say %q", tc.id, got, tc.want)
			}
			for _, f := range []string{pki.CertFile, pki.CAFile, pki.CAKeyFile} {
				if _, err := os.Stat(tlsDirOf(n).Path(f)); err == nil {
					t.Fatalf("%s: has %s after a refused join", tc.id, f)
				}
			}
			n.waitExit(30 * time.Second)
		})
	}

	// Restarts with the same options keep working with the stored
	// certificates: a crashed joiner, then the bootstrap node.
	before, _ := os.ReadFile(tlsDirOf(nodes[1]).Path(pki.CertFile))
	nodes[1].kill()
	nodes[1].restart(c.bin)
	nodes[1].waitStarted()
	c.waitSettled(nodes, 60*time.Second)
	nodes[0].gracefulStop(t)
	c.waitSettled(nodes[1:], 60*time.Second)
	nodes[0].restart(c.bin)
	nodes[0].waitStarted()
	c.waitSettled(nodes, 60*time.Second)
	if after, _ := os.ReadFile(tlsDirOf(nodes[1]).Path(pki.CertFile)); string(after) != string(before) {
		t.Fatal("n2 has a new certificate after its restart; want the stored one")
	}
	checkVoters(t, nodes, 3)
	// Stop the nodes before their temp dirs are removed (a running etcd
	// keeps writing into them).
	stopAllAtOnce(t, nodes)
}
