// Package integration holds tests and benchmarks of whole ClusterKit
// clusters: several nodes in one process against etcd servers that this
// module did not build (Debian's etcd-server, built with the etcdserver
// tag), fault injection, and the benchmarks of the whole system.
//
// The tests under the etcdserver build tag need an etcd binary: set
// CLUSTERKIT_ETCD_BIN (".ci/run" installs Debian's etcd-server and runs
// them). deploy/test.sh brings the Docker Compose deployments up, cuts a
// container off the network, heals and restarts it (".ci/run" runs it
// when Docker answers). The untagged tests and benchmarks need nothing
// but Go.
//
// Every process fault test writes one summary line (internal/reliability);
// `go run ./integration/reliability <go test -json output>` turns a run's
// lines into RELIABILITY.md. `go run ./integration/bench` measures the
// whole system (lookups, formation, faults, memory, and the kvbench and
// scalebench tables). CLUSTERKIT_MANY_ROUNDS sets TestManyNodesAtOnce's
// rounds (default 2); CLUSTERKIT_SOAK the soak's length (default 2 min).
package integration
