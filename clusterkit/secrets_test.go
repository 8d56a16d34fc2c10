package clusterkit_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// status sends method path with token as the bearer and returns the
// status and body.
func status(t *testing.T, ck *clusterkit.ClusterKit, method, path, body, token string) (int, []byte) {
	t.Helper()
	resp, b := call(t, ck, method, path, body, "Authorization", "Bearer "+token)
	return resp.StatusCode, b
}

// TestSecretRotation rotates the cluster secret through one node of two:
// both accept the new secret at once and the old one until the window
// ends, then refuse it; a second rotation keeps the first new secret in
// its window.
func TestSecretRotation(t *testing.T) {
	srv := etcdtest.Start(t)
	var ca *pki.CA
	nodes := startExternal(t, srv, 2, func(o *clusterkit.Options) {
		if o.NodeID == "node-1" {
			var err error
			if ca, err = pki.NewCA("test", time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := pki.Dir(filepath.Join(o.DataDir, "tls")).WriteCA(ca); err != nil {
				t.Fatal(err)
			}
		}
	})
	n1, n2 := nodes[0], nodes[1]
	if code, b := status(t, n1, "GET", "/cluster/token", "", testToken); code != 200 || !jsonHas(b, "token", "ck1."+ca.Fingerprint()+"."+testToken) {
		t.Fatalf("GET /cluster/token on node-1: %d %s, want the pinned token", code, b)
	}
	if code, b := status(t, n2, "GET", "/cluster/token", "", testToken); code != 200 || !jsonHas(b, "token", testToken) {
		t.Fatalf("GET /cluster/token on node-2 (no CA): %d %s, want the plain secret", code, b)
	}
	for _, bad := range []string{`{"window":"-1s"}`, `{"window":"soon"}`, `{"other":1}`} {
		if code, b := status(t, n1, "POST", "/cluster/secret/rotate", bad, testToken); code != 400 {
			t.Fatalf("rotate with %s: %d %s, want 400", bad, code, b)
		}
	}
	if code, _ := status(t, n1, "POST", "/cluster/secret/rotate", "", "wrong"); code != 401 {
		t.Fatalf("rotate with a wrong token: %d, want 401", code)
	}

	first := rotate(t, n1, testToken, "2s")
	if tok, _ := pki.ParseToken(first.Token); tok.Pin != ca.Fingerprint() || tok.Secret == testToken {
		t.Fatalf("rotated token %q: want a new secret pinned to the CA", first.Token)
	}
	for _, n := range nodes {
		for _, tok := range []string{first.Token, testToken} {
			if code, b := status(t, n, "GET", "/cluster/token", "", tok); code == 401 {
				t.Fatalf("%s refused %q within the window: %s", n.GetMyNodeID(), tok, b)
			}
		}
	}
	// The nodes' own ClusterToken is no longer the cluster's: asked with
	// the replaced one, GET /cluster/token says so.
	if code, b := status(t, n2, "GET", "/cluster/token", "", testToken); code != http.StatusConflict {
		t.Fatalf("GET /cluster/token with the replaced secret after rotation: %d %s, want 409", code, b)
	}
	time.Sleep(time.Until(first.PreviousUntil) + 100*time.Millisecond)
	for _, n := range nodes {
		if code, _ := status(t, n, "GET", "/cluster/token", "", testToken); code != 401 {
			t.Fatalf("%s accepts the replaced secret after its window: %d", n.GetMyNodeID(), code)
		}
	}
	// Rotate again with the new token (a pinned one is accepted as well).
	second := rotate(t, n2, first.Token, "1h")
	for _, tok := range []string{first.Token, second.Token} {
		if code, b := status(t, n1, "POST", "/rebalance", "", tok); code == 401 {
			t.Fatalf("node-1 refused %q after the second rotation: %s", tok, b)
		}
	}
	if _, err := n2.RotateSecret(context.Background(), clusterkit.MaxSecretWindow+time.Hour); !errors.Is(err, clusterkit.ErrInvalidOptions) {
		t.Fatalf("RotateSecret beyond MaxSecretWindow: %v, want ErrInvalidOptions", err)
	}
}

func TestRotateSecretNotStarted(t *testing.T) {
	ck, err := clusterkit.New(clustertest.Options(t, "n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ck.RotateSecret(context.Background(), 0); !errors.Is(err, clusterkit.ErrNotStarted) {
		t.Fatalf("RotateSecret before Start: %v, want ErrNotStarted", err)
	}
}

func rotate(t *testing.T, ck *clusterkit.ClusterKit, token, window string) clusterkit.SecretRotation {
	t.Helper()
	code, b := status(t, ck, "POST", "/cluster/secret/rotate", `{"window":"`+window+`"}`, token)
	var rot clusterkit.SecretRotation
	if code != http.StatusOK || json.Unmarshal(b, &rot) != nil || rot.Token == "" {
		t.Fatalf("rotate on %s: %d %s", ck.GetMyNodeID(), code, b)
	}
	return rot
}

func jsonHas(b []byte, key, want string) bool {
	var m map[string]string
	return json.Unmarshal(b, &m) == nil && m[key] == want
}
