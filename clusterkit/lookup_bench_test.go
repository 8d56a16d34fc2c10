package clusterkit

import (
	"fmt"
	"testing"
)

// benchNode returns a node whose snapshot holds a settled 64-partition,
// RF 3 map over 10 nodes, without etcd: it measures the lookups alone.
func benchNode(b *testing.B) (*ClusterKit, []string) {
	ck, err := New(Options{NodeID: "node-0", HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("node-%d", i))
	}
	in := reconcileInput{cfg: clusterConfig{PartitionCount: 64, ReplicationFactor: 3}, members: members(ids...)}
	out, err := reconcile(in)
	if err != nil {
		b.Fatal(err)
	}
	ck.snap.Store(newSnapshot("node-0", in.members, out.assign, 1, "node-0"))
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%08d", i)
	}
	return ck, keys
}

func BenchmarkGetPartition(b *testing.B) {
	ck, keys := benchNode(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := ck.GetPartition(keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetPrimary(b *testing.B) {
	ck, keys := benchNode(b)
	p, _ := ck.GetPartition(keys[0])
	b.ReportAllocs()
	for b.Loop() {
		if ck.GetPrimary(p) == nil {
			b.Fatal("no primary")
		}
	}
}

func BenchmarkIsPrimary(b *testing.B) {
	ck, keys := benchNode(b)
	p, _ := ck.GetPartition(keys[0])
	b.ReportAllocs()
	for b.Loop() {
		ck.IsPrimary(p)
	}
}

func BenchmarkIsReplica(b *testing.B) {
	ck, keys := benchNode(b)
	p, _ := ck.GetPartition(keys[0])
	b.ReportAllocs()
	for b.Loop() {
		ck.IsReplica(p)
	}
}

func BenchmarkGetReplicas(b *testing.B) {
	ck, keys := benchNode(b)
	p, _ := ck.GetPartition(keys[0])
	b.ReportAllocs()
	for b.Loop() {
		if len(ck.GetReplicas(p)) != 2 {
			b.Fatal("want 2 replicas")
		}
	}
}

// BenchmarkKeyToPrimaryParallel is the hot path of a sharded service: key →
// partition → primary, from every core at once.
func BenchmarkKeyToPrimaryParallel(b *testing.B) {
	ck, keys := benchNode(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			p, _ := ck.GetPartition(keys[i%len(keys)])
			if ck.GetPrimary(p) == nil {
				b.Fatal("no primary")
			}
			i++
		}
	})
}
