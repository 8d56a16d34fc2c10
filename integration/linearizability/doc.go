// Package linearizability checks the examples/kvstore store in sync mode
// with porcupine: concurrent clients read and write through random nodes
// (separate processes) while nodes are killed, join, leave, freeze past
// their lease and lose an etcd voter, and the recorded history must be
// linearizable per key. See faults_test.go for the scenarios;
// CLUSTERKIT_LINEARIZABILITY_SOAK=<duration> repeats them for that long.
// TestSoak (soak_test.go) picks the same faults at random for
// CLUSTERKIT_SOAK (default 2 min) while an observer checks that no two
// observed maps name different primaries for one partition and epoch.
package linearizability
