//go:build etcdserver

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// certFiles is a certificate, its key and its CA in PEM files.
type certFiles struct{ cert, key, ca string }

// issueFiles writes a certificate for name signed by ca, and ca's
// certificate, into a new temp dir.
func issueFiles(t *testing.T, ca *pki.CA, name string) certFiles {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(name, nil, pki.CertValidity, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := certFiles{cert: filepath.Join(dir, "c.crt"), key: filepath.Join(dir, "c.key"), ca: filepath.Join(dir, "ca.crt")}
	for path, b := range map[string][]byte{f.cert: certPEM, f.key: keyPEM, f.ca: ca.CertPEM()} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func newCA(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// clientTLS loads f as a client configuration trusting f.ca.
func clientTLS(t *testing.T, f certFiles) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: poolOf(t, pem)}
}

// startRefused starts a node that must be refused: Start fails with an
// error that wraps want and names the endpoint.
func startRefused(t *testing.T, o clusterkit.Options, want error, check func(refused string)) {
	t.Helper()
	ck, err := clusterkit.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = ck.Start(ctx)
	ck.Stop(ctx)
	if !errors.Is(err, want) {
		t.Fatalf("Start error = %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), strings.TrimPrefix(strings.TrimPrefix(o.Etcd.Endpoints[0], "https://"), "http://")) {
		t.Fatalf("Start error %q does not name the endpoint %s", err, o.Etcd.Endpoints[0])
	}
	t.Logf("refused as expected: %v", err)
	check(o.NodeID)
}

// checkNothingLeft checks, with an etcd client that may read everything,
// right after refused's Start failed, that it left no member key and no
// lease: at most one lease per node in good exists (a good node whose
// lease lapsed on a starved machine has fewer, never more).
func checkNothingLeft(t *testing.T, cli *clientv3.Client, refused string, good int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/clusterkit/default/members/"+refused)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) > 0 {
		t.Fatalf("the refused node %s left its member key", refused)
	}
	ls, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Leases) > good {
		t.Fatalf("%d leases in etcd, want at most %d (one per live node)", len(ls.Leases), good)
	}
}

// TestExternalEtcdMutualTLS runs nodes against Debian's etcd with
// --client-cert-auth, with certificates from files, and refuses nodes
// without a certificate, with one from another CA, and with a CA that did
// not sign etcd's server certificate.
func TestExternalEtcdMutualTLS(t *testing.T) {
	ca, other := newCA(t, "etcd"), newCA(t, "other")
	server := issueFiles(t, ca, "etcd")
	root := issueFiles(t, ca, "root")
	etcd := startEtcdTLS(t, &etcdTLS{
		flags: []string{"--cert-file", server.cert, "--key-file", server.key,
			"--trusted-ca-file", server.ca, "--client-cert-auth"},
		client: clientTLS(t, root),
	})
	node := func(id string, f certFiles) clusterkit.Options {
		o := clustertest.Options(t, id)
		o.Etcd = clusterkit.EtcdConfig{Endpoints: etcd.endpoints(), CertFile: f.cert, KeyFile: f.key, CAFile: f.ca}
		o.LeaseTTL = 5 * time.Second // a starved test machine must not lapse leases here
		return o
	}
	n1 := clustertest.Start(t, node("node-1", issueFiles(t, ca, "node-1")), nil)
	n2 := clustertest.Start(t, node("node-2", issueFiles(t, ca, "node-2")), nil)
	clustertest.Eventually(t, 20*time.Second, func() bool { return clustertest.Agreed(n1, n2) }, "2 TLS nodes never agreed")

	stranger := issueFiles(t, other, "stranger")
	noCert := node("no-cert", certFiles{ca: server.ca})
	strangerCert := node("stranger", stranger)
	strangerCert.Etcd.CAFile = server.ca
	wrongCA := node("wrong-ca", issueFiles(t, ca, "wrong-ca"))
	wrongCA.Etcd.CAFile = stranger.ca
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.endpoints(), TLS: clientTLS(t, root), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for name, o := range map[string]clusterkit.Options{"no client certificate": noCert,
		"client certificate of another CA": strangerCert, "server not signed by CAFile": wrongCA} {
		t.Run(name, func(t *testing.T) {
			startRefused(t, o, clusterkit.ErrTLS, func(id string) { checkNothingLeft(t, cli, id, 2) })
		})
	}
}

// TestExternalEtcdPasswordAuth enables etcd's auth (root user and role,
// a read-write role on the cluster's prefixes) and refuses a wrong
// password, an unknown user, no credentials, a user with permissions on
// another prefix only and a read-only user, leaving nothing behind.
func TestExternalEtcdPasswordAuth(t *testing.T) {
	etcd := startEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cli.RoleAdd(ctx, "root"))
	must(cli.UserAdd(ctx, "root", "rootpw"))
	must(cli.UserGrantRole(ctx, "root", "root"))
	grant := func(user, pw, role string, perm clientv3.PermissionType, prefixes ...string) {
		must(cli.RoleAdd(ctx, role))
		for _, p := range prefixes {
			must(cli.RoleGrantPermission(ctx, role, p, clientv3.GetPrefixRangeEnd(p), perm))
		}
		must(cli.UserAdd(ctx, user, pw))
		must(cli.UserGrantRole(ctx, user, role))
	}
	grant("ck", "ckpw", "clusterkit", clientv3.PermissionType(clientv3.PermReadWrite), "/clusterkit/default/", "/clusterkit-data/default/")
	grant("reader", "readerpw", "reader", clientv3.PermissionType(clientv3.PermRead), "/clusterkit/default/")
	grant("outsider", "outsiderpw", "outsider", clientv3.PermissionType(clientv3.PermReadWrite), "/other/")
	must(cli.AuthEnable(ctx))
	cli.Close()

	node := func(id, user, pw string) clusterkit.Options {
		o := clustertest.Options(t, id)
		// etcd checks passwords with bcrypt: give a starved machine time.
		o.Etcd = clusterkit.EtcdConfig{Endpoints: etcd.endpoints(), Username: user, Password: pw, DialTimeout: 15 * time.Second}
		o.LeaseTTL = 5 * time.Second
		return o
	}
	rootCli, err := clientv3.New(clientv3.Config{Endpoints: etcd.endpoints(), Username: "root", Password: "rootpw", Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rootCli.Close()
	n1 := clustertest.Start(t, node("node-1", "ck", "ckpw"), nil)
	n2 := clustertest.Start(t, node("node-2", "ck", "ckpw"), nil)
	clustertest.Eventually(t, 20*time.Second, func() bool { return clustertest.Agreed(n1, n2) }, "2 nodes with a password never agreed")

	for _, tc := range []struct{ name, user, pw string }{
		{"wrong password", "ck", "nope"},
		{"unknown user", "mallory", "pw"},
		{"no credentials", "", ""},
		{"no permission on the prefix", "outsider", "outsiderpw"},
		{"read-only user", "reader", "readerpw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			startRefused(t, node("bad", tc.user, tc.pw), clusterkit.ErrUnauthorized, func(id string) { checkNothingLeft(t, rootCli, id, 2) })
		})
	}
}

func poolOf(t *testing.T, pem []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the CA file")
	}
	return p
}
