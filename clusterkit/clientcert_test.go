package clusterkit_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// A process that is not a node gets a client-only certificate with the
// join token, and a Router reaches the secure cluster's etcd with it;
// refused requests write nothing; the certificate cannot be renewed into
// a member's.
func TestClientCertificateForRouter(t *testing.T) {
	nodes := clustertest.Form(t, 3, nil, nil)
	token := clustertest.JoinToken(t, nodes[0])
	tok, err := pki.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr := clustertest.Addr(nodes[1])

	for _, tc := range []struct {
		name string
		req  clusterkit.ClientCertRequest
		want error
		says string
	}{
		{"wrong secret", clusterkit.ClientCertRequest{Token: "ck1." + tok.Pin + ".wrong"}, clusterkit.ErrUnauthorized, "refused the cluster token"},
		{"other CA", clusterkit.ClientCertRequest{Token: "ck1." + strings.Repeat("0", 64) + "." + tok.Secret}, clusterkit.ErrTLS, "fingerprint"},
		{"plain secret", clusterkit.ClientCertRequest{Token: tok.Secret}, clusterkit.ErrInvalidOptions, "ClientCertRequest.Token"},
		{"bad name", clusterkit.ClientCertRequest{Name: "gate/way"}, clusterkit.ErrInvalidOptions, "ClientCertRequest.Name"},
		{"bad address", clusterkit.ClientCertRequest{NodeAddr: "nowhere"}, clusterkit.ErrInvalidOptions, "ClientCertRequest.NodeAddr"},
		{"other cluster", clusterkit.ClientCertRequest{ClusterName: "other"}, clusterkit.ErrJoinFailed, `serves cluster "default", not "other"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.NodeAddr = cmp.Or(req.NodeAddr, addr)
			req.Token = cmp.Or(req.Token, token)
			req.Name = cmp.Or(req.Name, "gateway-1")
			req.Dir = filepath.Join(t.TempDir(), "certs")
			_, err := clusterkit.RequestClientCertificate(ctx, req)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("RequestClientCertificate: error %v, want %v saying %q", err, tc.want, tc.says)
			}
			if strings.Contains(err.Error(), tok.Secret) {
				t.Fatalf("the error shows the secret: %v", err)
			}
			if _, err := os.Stat(req.Dir); !os.IsNotExist(err) {
				t.Fatalf("a refused request wrote %s (stat: %v)", req.Dir, err)
			}
		})
	}

	dir := filepath.Join(t.TempDir(), "certs")
	cert, err := clusterkit.RequestClientCertificate(ctx, clusterkit.ClientCertRequest{NodeAddr: addr, Token: token, Name: "gateway-1", Dir: dir})
	if err != nil {
		t.Fatalf("RequestClientCertificate: %v", err)
	}
	if cert.Cluster != "default" || len(cert.Endpoints) == 0 || time.Until(cert.NotAfter) < 300*24*time.Hour {
		t.Fatalf("got %+v, want cluster default, etcd endpoints and a year's validity", cert)
	}
	if loose, err := pki.Dir(dir).Permissions(); err != nil || len(loose) > 0 {
		t.Fatalf("files readable by others: %v (%v)", loose, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.key")); !os.IsNotExist(err) {
		t.Fatalf("the CA key was written (stat: %v)", err)
	}
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if l := pair.Leaf; l.IsCA || !slices.Equal(l.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || l.Subject.CommonName != "gateway-1" {
		t.Fatalf("certificate: CA %v, usages %v, name %q; want a client-only certificate for gateway-1", l.IsCA, l.ExtKeyUsage, l.Subject.CommonName)
	}

	r, err := clusterkit.NewRouter(ctx, clusterkit.RouterOptions{Etcd: cert.EtcdConfig()})
	if err != nil {
		t.Fatalf("NewRouter with the client certificate: %v", err)
	}
	defer r.Close()
	clustertest.Eventually(t, 10*time.Second, func() bool { return sameRouting(r, nodes[0]) == nil }, "router never matched the nodes")
	if c := r.GetCluster(); c.Name != "default" || c.PartitionCount != 16 || c.ReplicationFactor != 3 || len(c.Nodes) != 3 || c.Leader == "" {
		t.Fatalf("GetCluster: got %s %d × %d, %d nodes, leader %q; want default 16 × 3, 3 nodes and a leader", c.Name, c.PartitionCount, c.ReplicationFactor, len(c.Nodes), c.Leader)
	}

	// Updated fires on an operator's order, which NodeOperations shows.
	updated := r.Updated()
	if err := nodes[0].CordonNode(ctx, "node-3"); err != nil {
		t.Fatalf("CordonNode: %v", err)
	}
	select {
	case <-updated:
	case <-ctx.Done():
		t.Fatal("Updated never fired after a cordon")
	}
	clustertest.Eventually(t, 10*time.Second, func() bool {
		ops := r.NodeOperations()
		return len(ops) == 1 && ops[0].Node == "node-3" && ops[0].Operation == clusterkit.NodeCordoned
	}, "router never showed node-3 cordoned: %v", r.NodeOperations())

	t.Run("not renewed into a member certificate", func(t *testing.T) {
		status, body := renewWith(t, addr, tok.Pin, pair)
		if status != http.StatusForbidden || !strings.Contains(body, "client certificate is not renewed") {
			t.Fatalf("renewal with a client certificate: %d %s, want 403", status, body)
		}
	})
}

// renewWith posts a renewal request for cert's name to the node at addr,
// authenticated by cert, and returns the answer.
func renewWith(t *testing.T, addr, pin string, cert tls.Certificate) (int, string) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, cert.Leaf.Subject.CommonName, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := pki.PinnedClientConfig(pin)
	cfg.Certificates = []tls.Certificate{cert}
	cl := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: cfg}}
	body, _ := json.Marshal(map[string]string{"csr": string(csr)})
	resp, err := cl.Post("https://"+addr+"/cluster/certificate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// BenchmarkRequestClientCertificate is one issuance from a 3-node
// cluster's node: key and CSR here, the pinned TLS handshake, signing,
// checks and the three files.
func BenchmarkRequestClientCertificate(b *testing.B) {
	nodes := clustertest.Form(b, 3, nil, nil)
	req := clusterkit.ClientCertRequest{NodeAddr: clustertest.Addr(nodes[1]), Token: clustertest.JoinToken(b, nodes[0]), Name: "bench", Dir: b.TempDir()}
	for b.Loop() {
		if _, err := clusterkit.RequestClientCertificate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
