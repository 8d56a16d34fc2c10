package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
)

// TestTokenCommands prints the join token of a real 2-node cluster,
// rotates the secret, and checks which tokens the nodes accept after.
func TestTokenCommands(t *testing.T) {
	nodes := clustertest.Form(t, 2, nil, nil)
	ctx := context.Background()
	env := map[string]string{envNode: clustertest.Addr(nodes[1])}
	old := clustertest.JoinToken(t, nodes[0]) // ck1.<pin>.test-token: the CLI dials https with the pin

	if r := cli(ctx, env, "token", "--token", old); r.code != exitOK || r.stdout != old+"\n" {
		t.Fatalf("token: got %v, want the join token", r)
	}
	if r := cli(ctx, env, "token", "--token", "test-token"); r.code != exitFailed || !strings.Contains(r.stderr, "https://") {
		t.Fatalf("token with the plain secret over plain HTTP: got %v, want exit 1 saying use https://", r)
	}
	if r := cli(ctx, env, "token"); r.code != exitUsage || !strings.Contains(r.stderr, "--token") {
		t.Fatalf("token without a token: got %v, want a usage error", r)
	}
	wrong := strings.TrimSuffix(old, "test-token") + "wrong"
	if r := cli(ctx, env, "token", "--token", wrong); r.code != exitFailed || !strings.Contains(r.stderr, "401") {
		t.Fatalf("token with a wrong token: got %v, want exit 1 with 401", r)
	}
	if r := cli(ctx, env, "token", "rotate", "--token", old, "--window", "-1s"); r.code != exitUsage {
		t.Fatalf("rotate --window -1s: got %v, want a usage error", r)
	}

	r := cli(ctx, env, "token", "rotate", "--token", old, "--window", "1h", "-o", "json")
	var rot tokenJSON
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rot) != nil || rot.Token == "" || rot.Token == old || rot.PreviousUntil == nil {
		t.Fatalf("token rotate -o json: got %v", r)
	}
	// Both nodes accept the new token; the old one within the window.
	for _, n := range nodes {
		e := map[string]string{envNode: clustertest.Addr(n)}
		if r := cli(ctx, e, "token", "--token", rot.Token); r.code != exitOK || r.stdout != rot.Token+"\n" {
			t.Fatalf("token with the rotated token on %s: got %v", n.GetMyNodeID(), r)
		}
		if r := cli(ctx, e, "rebalance", "--token", old); r.code != exitOK {
			t.Fatalf("rebalance with the replaced token within its window on %s: got %v", n.GetMyNodeID(), r)
		}
	}
	r = cli(ctx, env, "token", "rotate", "--token", rot.Token)
	if lines := strings.Split(r.stdout, "\n"); r.code != exitOK || len(lines) < 2 || lines[0] == rot.Token || !strings.Contains(lines[1], "accepted until") {
		t.Fatalf("token rotate: got %v", r)
	}
}
