package placement

import (
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// golden pins PartitionOf forever. The hash column is XXH64 with seed 0;
// the first three and the last are the reference values published with
// xxHash, so the table also shows that HashName means the standard XXH64.
var golden = []struct {
	key                    string
	hash                   uint64
	p7, p64, p1024, p16384 int
}{
	{"", 0xef46db3751d8e999, 6, 25, 409, 10649},
	{"a", 0xd24ec4f1a98c6e5b, 6, 27, 603, 11867},
	{"abc", 0x44bc2cf5ad770999, 0, 25, 409, 2457},
	{"user:1", 0xd9c7c4609e6080f3, 1, 51, 243, 243},
	{"user:2", 0x337be5a0c611350a, 3, 10, 266, 13578},
	{"user:42", 0xdc1fea7da8d2d1c2, 4, 2, 450, 4546},
	{"order/2024/0001", 0x2cfc6fc5e134ef21, 5, 33, 801, 12065},
	{"session-7f3a9c", 0xfe8c6add09a8d0e2, 1, 34, 226, 4322},
	{"日本語", 0x7179a19f3719f5e1, 6, 33, 481, 13793},
	{"The quick brown fox jumps over the lazy dog", 0x0b242d361fda71bc, 2, 60, 444, 12732},
}

func TestPartitionOfGolden(t *testing.T) {
	if HashName != "xxhash64" {
		t.Errorf("HashName = %q, want %q (it is stored in cluster configs)", HashName, "xxhash64")
	}
	for _, g := range golden {
		if got := xxhash.Sum64String(g.key); got != g.hash {
			t.Errorf("XXH64(%q) = %#x, want %#x", g.key, got, g.hash)
		}
		for _, c := range []struct{ partitions, want int }{{1, 0}, {7, g.p7}, {64, g.p64}, {1024, g.p1024}, {16384, g.p16384}} {
			if got := PartitionOf(g.key, c.partitions); got != c.want {
				t.Errorf("PartitionOf(%q, %d) = %d, want %d", g.key, c.partitions, got, c.want)
			}
		}
	}
}

func TestPartitionOfBadCount(t *testing.T) {
	for _, partitions := range []int{0, -1, -1 << 62} {
		if got := PartitionOf("user:1", partitions); got != 0 {
			t.Errorf("PartitionOf(%q, %d) = %d, want 0", "user:1", partitions, got)
		}
	}
}

func TestPartitionOfSpread(t *testing.T) {
	// Not a statistical test, a smoke test: 64,000 keys over 64 partitions
	// should land close to 1,000 each.
	const partitions, keys = 64, 64000
	var count [partitions]int
	for k := range keys {
		count[PartitionOf("key-"+strconv.Itoa(k), partitions)]++
	}
	for p, c := range count {
		if c < 850 || c > 1150 {
			t.Errorf("partition %d got %d of %d keys, want about %d", p, c, keys, keys/partitions)
		}
	}
}
