// Package examples holds the Go code of the guides in docs/: every ```go
// block of docs/*.md is a declaration copied from this package's
// _test.go files, and TestGuideBlocks fails when a block is not (so a block
// that does not compile, or that drifted from the code, fails `go test`).
// The examples that start nodes run real embedded etcd on loopback ports
// with temporary data directories, and stop them.
package examples
