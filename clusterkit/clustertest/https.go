package clustertest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// JoinToken returns ck's join token ("ck1.<pin>.<secret>") or fails the
// test.
func JoinToken(t testing.TB, ck *clusterkit.ClusterKit) string {
	t.Helper()
	tok, err := ck.JoinToken()
	if err != nil {
		t.Fatalf("clustertest: JoinToken(%s): %v", ck.GetMyNodeID(), err)
	}
	return tok
}

// HTTPSClient returns an HTTP client for the API of ck's cluster over
// https: it accepts only servers whose certificate chain holds the
// cluster CA (the pin of ck's JoinToken), as the CLI does with a ck1.
// token. It keeps no idle connections.
func HTTPSClient(t testing.TB, ck *clusterkit.ClusterKit) *http.Client {
	t.Helper()
	tok, err := pki.ParseToken(JoinToken(t, ck))
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	return &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: pki.PinnedClientConfig(tok.Pin)}}
}

// Admin makes a token-protected call (method, path, body; body may be "")
// to ck's API over https with ck's cluster token, and returns the status
// and body. It fails the test when the call cannot be made.
func Admin(t testing.TB, ck *clusterkit.ClusterKit, method, path, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+Addr(ck)+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("clustertest: %s %s: %v", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+JoinToken(t, ck))
	resp, err := HTTPSClient(t, ck).Do(req)
	if err != nil {
		t.Fatalf("clustertest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, bytes.TrimSpace(b)
}
