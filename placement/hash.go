package placement

import "github.com/cespare/xxhash/v2"

// HashName names the key hash used by PartitionOf. A cluster stores it in its
// configuration so that every node, now and after upgrades, maps keys to the
// same partitions; it changes only if PartitionOf ever changes, which it must
// not.
const HashName = "xxhash64"

// PartitionOf returns the partition of key among partitions partitions: the
// 64-bit xxHash (XXH64, seed 0) of the key's bytes modulo partitions. The
// mapping is fixed forever; a golden table in the tests pins it.
//
// If partitions < 1, PartitionOf returns 0; it never panics. It does not
// allocate and is safe for concurrent use.
func PartitionOf(key string, partitions int) int {
	if partitions < 1 {
		return 0
	}
	return int(xxhash.Sum64String(key) % uint64(partitions))
}
