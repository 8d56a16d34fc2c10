// Package integration holds tests and benchmarks of whole ClusterKit
// clusters: several nodes in one process against etcd servers that this
// module did not build (Debian's etcd-server, built with the etcdserver
// tag), fault injection, and the benchmarks of the whole system.
//
// The tests under the etcdserver build tag need an etcd binary: set
// CLUSTERKIT_ETCD_BIN (".ci/run" installs Debian's etcd-server and runs
// them). docker/partition.sh cuts a kvstore container off a private Docker
// network and heals it (".ci/run" runs it when Docker answers). The
// untagged tests and benchmarks need nothing but Go.
package integration
