package main

// scenario is one fault scenario of the integration tests: where it
// lives, what it does and what it asserts (text), and how to run it. The
// figures come from a test run, never from here.
type scenario struct {
	pkg, test string // package path below the module, test function
	fault     string
	asserts   string
	tags      string // build tags the test needs
}

const (
	pkgIntegration = "./integration/"
	pkgLinear      = "./integration/linearizability/"
	pkgClusterKit  = "./clusterkit/"
)

// scenarios lists every fault scenario the integration tests run, in the
// order of RELIABILITY.md.
var scenarios = []scenario{
	{pkgIntegration, "TestFrozenPlainNode", "SIGSTOP of a node without an etcd member for 2 × TTL, then SIGCONT (4 processes)",
		"noticed by lease expiry; it rejoins as the same process with its data (catch-up, no copy to others); no collateral leave, no NoSource, one primary per (partition, epoch) across every observed map", ""},
	{pkgIntegration, "TestFrozenVoter", "SIGSTOP of a node hosting an etcd voter (not the etcd leader) for 2 × TTL",
		"no other node loses its membership; no NoSource, no copy to nodes that never left, one primary per (partition, epoch)", ""},
	{pkgIntegration, "TestFrozenEtcdLeader", "SIGSTOP of the node hosting the etcd raft leader for 3 × TTL",
		"its primaries fail over while it is frozen (other nodes' requests on its member's open connections must not hang); every node that loses its lease (etcd #15247) comes back as the same process with its data; no NoSource; one primary per (partition, epoch)", ""},
	{pkgIntegration, "TestTwoFrozenNodesEnterMaintenance", "SIGSTOP of half the cluster (a voter and a plain node)",
		"the leader enters maintenance (failover only, no re-placement) and leaves it when both are back", ""},
	{pkgIntegration, "TestFrozenExternalEtcdMember", "SIGSTOP of the leading member of an external 3-member etcd for 4 × TTL, with a SIGKILL of the ClusterKit leader at the same moment",
		"a new leader fails the dead node's primaries over while the member is still frozen (no request or watch stays on its open connections); no NoSource; one primary per (partition, epoch)", ""},
	{pkgIntegration, "TestKilledNodeBackWithinDelay", "SIGKILL of a plain node, restarted within the rebalance delay",
		"primaries fail over at once; no replica placed elsewhere; the new process gets its own slots back by copy; no NoSource; one primary per (partition, epoch)", ""},
	{pkgIntegration, "TestEtcdOutageKeepsData", "the external etcd killed for 10 × TTL under 4 running node processes, then restarted",
		"no partition handed out without a source, no data moved", "etcdserver"},
	{pkgIntegration, "TestQuorumLossRestart", "SIGKILL of two of three etcd voters, both restarted together",
		"the cluster comes back and agrees; 3 voters, no learner", ""},
	{pkgIntegration, "TestBootstrapRestartAfterStop", "graceful stop of the bootstrap node, restarted with its original options",
		"it rejoins; all agree; 3 voters", ""},
	{pkgIntegration, "TestRollingRestart", "every node stopped (SIGTERM) and restarted in turn",
		"every Stop returns nil; all agree after each restart; 3 voters and no learner at the end", ""},
	{pkgIntegration, "TestAllStopAtOnce", "8 embedded nodes SIGTERMed together, 3 rounds, then all started again at once",
		"every process exits 0 (Stop returned nil, no panic); the cluster comes back with 3 voters", ""},
	{pkgIntegration, "TestManyNodesAtOnce", "20 embedded node processes formed together (19 joining at once) and SIGTERMed together, on a fresh cluster per round (CLUSTERKIT_MANY_ROUNDS, default 2)",
		"every process exits 0 within 30 s (Stop returned nil); no panic or fatal error in any stderr; exit and Stop times reported (target ≤ 2 s)", ""},
	{pkgIntegration, "TestDeadVoterReplaced", "SIGKILL of an etcd voter that stays down",
		"after the rebalance delay its member is removed and a plain node becomes a voter: 3 voters, no learner", ""},
	{pkgIntegration, "TestStuckLearnerRemoved", "a learner added that never starts",
		"the leader removes it; voters unchanged", ""},
	{pkgIntegration, "TestLearnerKilledMidJoinRestarts", "SIGKILL of a node whose etcd member is a started learner not yet promoted, then a restart with the same options",
		"the member restarts as a learner and is promoted in place (same member ID): 3 voters, no learner", ""},
	{pkgIntegration, "TestDebianEtcdCluster", "4 nodes on Debian's etcd-server 3.4: a graceful leave and a crash",
		"the survivors see both leaves with the right reasons and agree", "etcdserver"},
	{pkgIntegration, "TestEtcdOutage", "the etcd process killed under a running cluster (etcd 3.4), then restarted",
		"lookups keep answering from the last map; health critical; recovery without a restart", "etcdserver"},
	{pkgIntegration, "TestWatcherCatchUpOnEtcd34", "writes while a watcher's consumer does not read (etcd 3.4 progress notifications, etcd #15220)",
		"every put arrives once, in order", "etcdserver"},
	{pkgIntegration, "TestSecureClusterOfProcesses", "3 node processes with default (secure) options probed by clients and peers without a certificate of the cluster CA, a wrong secret and a wrong CA pin; nodes crashed and stopped, then restarted",
		"every etcd client and peer port refuses them (no read, no write); a wrong secret or pin learns nothing; plain clients get certificates; restarts keep their stored certificates; DataDir/tls is owner-only", ""},
	{pkgIntegration, "TestExternalEtcdMutualTLS", "nodes on Debian's etcd 3.4 with --client-cert-auth: no certificate, one from another CA, a CA that did not sign etcd's",
		"each refused Start fails with ErrTLS naming the endpoint and leaves no member key and no extra lease; nodes with the right files form", "etcdserver"},
	{pkgIntegration, "TestExternalEtcdPasswordAuth", "etcd 3.4 with auth on: wrong password, unknown user, no credentials, a user of another prefix, a read-only user",
		"each refused Start fails with ErrUnauthorized before anything is registered and leaves nothing behind", "etcdserver"},
	{pkgClusterKit, "TestCorruptStateIsIgnoredAndRepaired", "malformed or foreign values written under a live cluster's prefix (bad JSON, unknown format version, wrong partition count, unknown node slot, a member record with a bad address, a malformed failing-handoffs record)",
		"every node ignores each one with a logged error and one count of clusterkit_state_decode_errors_total, keeps serving its last good map, no panic; all agree again once the leader rewrote what it must", ""},
	{pkgLinear, "TestLinearizableUnderFaults", "kvstore (sync mode) under 6 clients while, twice each: SIGKILL of a primary + restart, a join, a graceful leave, SIGSTOP past the lease, SIGKILL of a voter + restart, SIGSTOP of a voter, graceful leave of a voter + restart",
		"the history (final reads included) is linearizable per key (porcupine): no acknowledged write lost; no other node evicted while one is frozen; a voter's graceful leave stalls writes ≤ 2 s", ""},
	{pkgLinear, "TestSoak", "the same faults picked at random, one after another, for CLUSTERKIT_SOAK (default 2 min) under the same clients",
		"one primary per (partition, epoch) across every map read from every node every 100 ms; the history is linearizable: no acknowledged write lost", ""},
}
