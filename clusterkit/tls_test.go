package clusterkit_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// startRefused starts a joiner with o and checks that Start fails with
// want and that the node learned nothing: no certificate, no CA in its
// DataDir.
func startRefused(t *testing.T, o clusterkit.Options, want ...error) {
	t.Helper()
	ck, err := clusterkit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Stop(contextTimeout(t, 10*time.Second))
	err = ck.Start(contextTimeout(t, 30*time.Second))
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("Start: got %v, want %v", err, want)
		}
	}
	d := pki.Dir(filepath.Join(o.DataDir, "tls"))
	for _, f := range []string{pki.CertFile, pki.CAFile, pki.CAKeyFile} {
		if _, err := os.Stat(d.Path(f)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after a refused join %s exists (%v): the node learned something", f, err)
		}
	}
	if strings.Contains(err.Error(), "BEGIN") || strings.Contains(err.Error(), "endpoints") {
		t.Fatalf("the refusal carries cluster data: %v", err)
	}
}

// post sends a join request to ck's API with client cl and returns status
// and body.
func post(t *testing.T, cl *http.Client, url, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSecureJoinRefusalsLearnNothing(t *testing.T) {
	o1 := clustertest.Options(t, "node-1")
	o1.ClusterToken = "" // the bootstrap node generates the secret
	core, logs := observer.New(zapcore.InfoLevel)
	o1.Logger = zap.New(core)
	first := clustertest.Start(t, o1, nil)
	token := clustertest.JoinToken(t, first)
	tok, err := pki.ParseToken(token)
	if err != nil || tok.Pin == "" || len(tok.Secret) < 40 {
		t.Fatalf("JoinToken() = %q (%v), want ck1.<pin>.<generated secret>", token, err)
	}
	if logs.FilterField(zap.String("join_token", token)).Len() != 1 {
		t.Fatalf("the bootstrap node did not log its join token once")
	}
	other, err := pki.NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	joiner := func(token string) clusterkit.Options {
		o := clustertest.Options(t, "node-2")
		o.JoinAddr, o.ClusterToken = clustertest.Addr(first), token
		return o
	}

	t.Run("wrong secret", func(t *testing.T) {
		startRefused(t, joiner("ck1."+tok.Pin+".wrong"), clusterkit.ErrJoinFailed, clusterkit.ErrUnauthorized)
	})
	t.Run("right secret, wrong pin", func(t *testing.T) {
		startRefused(t, joiner("ck1."+other.Fingerprint()+"."+tok.Secret), clusterkit.ErrJoinFailed, clusterkit.ErrTLS)
	})
	base := "https://" + clustertest.Addr(first) + "/cluster/join"
	pinned := clustertest.HTTPSClient(t, first)
	t.Run("raw requests", func(t *testing.T) {
		for _, tc := range []struct {
			name, url, auth, body string
			cl                    *http.Client
			status                int
			want                  string
		}{
			{"right token over plain HTTP", "http://" + clustertest.Addr(first) + "/cluster/join", token, `{"node_id":"x"}`, http.DefaultClient, 403, "use https://"},
			{"wrong secret", base, "wrong", `{"node_id":"x"}`, pinned, 401, "wrong cluster token"},
			{"no token", base, "", `{"node_id":"x"}`, pinned, 401, "wrong cluster token"},
			{"garbage CSR", base, token, `{"node_id":"x","csr":"nope"}`, pinned, 400, "certificate request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, body := post(t, tc.cl, tc.url, tc.auth, tc.body)
				if status != tc.status || !strings.Contains(body, tc.want) {
					t.Fatalf("status %d, body %s; want %d with %q", status, body, tc.status, tc.want)
				}
				if strings.Contains(body, "endpoints") || strings.Contains(body, "BEGIN") {
					t.Fatalf("a refused join learned cluster data: %s", body)
				}
			})
		}
		wrongPin := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.PinnedClientConfig(other.Fingerprint())}}
		req, _ := http.NewRequest(http.MethodPost, base, strings.NewReader(`{"node_id":"x"}`))
		if resp, err := wrongPin.Do(req); err == nil || !errors.Is(err, pki.ErrPinMismatch) {
			if resp != nil {
				resp.Body.Close()
			}
			t.Fatalf("a client pinning another CA reached the join endpoint: %v", err)
		}
	})
	if n := len(first.GetCluster().Nodes); n != 1 {
		t.Fatalf("after refused joins the cluster has %d nodes, want 1", n)
	}

	t.Run("plain secret joins with a warning", func(t *testing.T) {
		o := joiner(tok.Secret)
		core, logs := observer.New(zapcore.WarnLevel)
		o.Logger = zap.New(core)
		second := clustertest.Start(t, o, nil)
		clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(first, second) }, "never agreed")
		if logs.FilterMessageSnippet("cannot authenticate the cluster").Len() == 0 {
			t.Fatal("a join with a plain secret logged no warning")
		}
		if got := clustertest.JoinToken(t, second); got != token {
			t.Fatalf("the joiner's JoinToken = %q, want the cluster's %q", got, token)
		}
	})
}

// TestSecureClusterStoresOwnerOnlyMaterialAndRestarts forms three nodes
// with default options, checks their etcd refuses a client without a
// certificate, that DataDir/tls is owner-only, and that a node restarted
// with the same options (and a JoinAddr that does not answer) comes back
// with its stored certificate, without a join call.
func TestSecureClusterStoresOwnerOnlyMaterialAndRestarts(t *testing.T) {
	opts := map[string]clusterkit.Options{}
	nodes := clustertest.Form(t, 3, func(o *clusterkit.Options) { opts[o.NodeID] = *o }, nil)
	for id, o := range opts {
		d := pki.Dir(filepath.Join(o.DataDir, "tls"))
		if !d.HasNode() || !d.HasCA() {
			t.Fatalf("%s: HasNode %v, HasCA %v; want both", id, d.HasNode(), d.HasCA())
		}
		if loose, err := d.Permissions(); err != nil || len(loose) > 0 {
			t.Fatalf("%s: files readable by others: %v, %v", id, loose, err)
		}
	}
	o2 := opts["node-2"]
	d2 := pki.Dir(filepath.Join(o2.DataDir, "tls"))
	certBefore, err := os.ReadFile(d2.Path(pki.CertFile))
	if err != nil {
		t.Fatal(err)
	}

	// etcd's client port: the node certificate is accepted, none is not.
	var eps []string
	b, err := os.ReadFile(filepath.Join(o2.DataDir, "etcd-peers-default"))
	if err != nil || json.Unmarshal(b, &eps) != nil || len(eps) == 0 {
		t.Fatalf("recorded etcd peers: %s, %v", b, err)
	}
	cert, pool, err := d2.LoadNode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"node certificate", pki.ClientConfig(cert, pool), true},
		{"no certificate", &tls.Config{InsecureSkipVerify: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tc.cfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx := contextTimeout(t, 3*time.Second)
			_, err = cli.Put(ctx, "/clusterkit/default/intruder", "x")
			if tc.ok != (err == nil) {
				t.Fatalf("Put: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				cli.Delete(ctx, "/clusterkit/default/intruder")
			}
		})
	}

	if err := nodes[1].Stop(contextTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	o2.JoinAddr = "127.0.0.1:1" // nothing answers: a join call would fail
	again := clustertest.Start(t, o2, nil)
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(nodes[0], again, nodes[2]) }, "never agreed after restart")
	if certAfter, _ := os.ReadFile(d2.Path(pki.CertFile)); !bytes.Equal(certBefore, certAfter) {
		t.Fatal("the restarted node has a new certificate; want the stored one")
	}
	if status, _ := clustertest.Admin(t, again, http.MethodPost, "/rebalance", ""); status != http.StatusAccepted {
		t.Fatalf("admin call to the restarted node: status %d, want 202", status)
	}
}
