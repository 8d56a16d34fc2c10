// Package pki makes and keeps a cluster's certificate authority and its
// members' certificates, and reads and writes join tokens.
//
// A cluster's CA is created once, by the node that bootstraps the cluster,
// and kept in that node's data directory. Every other node creates its own
// key, sends a certificate request (CSR) with its join call, and gets back a
// certificate signed by the CA; the private key never leaves the node.
// Certificates carry both server and client usage, so one certificate serves
// a node's etcd client and peer listeners, its HTTP API, and its clients.
//
// A join token, "ck1.<ca-sha256>.<secret>", pins the CA: a joiner checks the
// answering node's certificate chain against the pin before it sends the
// secret (PinnedClientConfig). A plain secret (no "ck1." prefix) is accepted
// too; it cannot authenticate the cluster.
//
// Every file this package writes is readable by its owner only (0600, in a
// 0700 directory). Functions are safe for concurrent use; a *CA is immutable.
package pki

import "errors"

// Sentinel errors; the package's errors wrap one of them.
var (
	// ErrInvalidToken: a join token that is neither "ck1.<64 hex>.<secret>"
	// nor a plain secret.
	ErrInvalidToken = errors.New("pki: invalid join token")
	// ErrPinMismatch: the certificate chain a server presented does not
	// contain the CA the token pins, or the leaf is not signed by it.
	ErrPinMismatch = errors.New("pki: server certificate does not match the token's CA pin")
	// ErrInvalidCSR: a certificate request that does not parse, is not
	// self-signed correctly, or asks for a name the CA refuses.
	ErrInvalidCSR = errors.New("pki: invalid certificate request")
	// ErrInvalidFiles: certificate or key files that are missing, do not
	// parse, or do not belong together.
	ErrInvalidFiles = errors.New("pki: invalid certificate files")
)
