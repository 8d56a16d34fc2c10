package main

import (
	"crypto/tls"
	"strings"

	"github.com/clusterkit-go/clusterkit/internal/pki"
)

// tlsFor returns the scheme to use for a --node without one and the TLS
// configuration of the client:
//
//   - --ca-file: https, the server's certificate must chain to those CAs
//     and name the host (an HTTPTLS certificate, or the cluster CA's
//     ca.crt from a node's DataDir/tls);
//   - a ck1. token: https, the server's chain must hold the token's CA
//     (its pin), as a joining node checks it;
//   - --insecure-skip-tls-verify: https without any check of the server;
//   - otherwise http (a plain token is then refused by a secure node with
//     403 "use https://").
func tlsFor(g *globals) (scheme string, cfg *tls.Config, err error) {
	switch {
	case g.caFile != "":
		pool, err := pki.ReadPool(g.caFile)
		if err != nil {
			return "", nil, usageError("invalid --ca-file: %v", err)
		}
		return "https", &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, InsecureSkipVerify: g.insecure}, nil
	case strings.HasPrefix(g.token, "ck1."):
		tok, err := pki.ParseToken(g.token)
		if err != nil {
			return "", nil, usageError("invalid --token: %v", err)
		}
		cfg := pki.PinnedClientConfig(tok.Pin)
		return "https", cfg, nil
	case g.insecure:
		return "https", &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil
	}
	return "http", nil, nil
}
