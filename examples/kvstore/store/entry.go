package store

import "fmt"

// Version orders the writes of one key: the partition epoch in which a
// primary took the write, then that primary's sequence number within the
// epoch. Only one node is primary of a partition in a given epoch, so two
// writes never share a version, and every write of a newer epoch orders
// after every write of an older one. The zero Version means "never
// written".
type Version struct {
	Epoch uint64 `json:"e"`
	Seq   uint64 `json:"s"`
}

// Less reports whether v orders before w.
func (v Version) Less(w Version) bool {
	if v.Epoch != w.Epoch {
		return v.Epoch < w.Epoch
	}
	return v.Seq < w.Seq
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Epoch, v.Seq) }

// Entry is one key's value at one version. A delete is an entry too (a
// tombstone), so that a copy merged later cannot bring the value back.
type Entry struct {
	Value   string  `json:"v,omitempty"`
	Deleted bool    `json:"d,omitempty"`
	Version Version `json:"ver"`
}

// keyEntry is one line of a partition stream.
type keyEntry struct {
	Key   string `json:"k"`
	Entry Entry  `json:"x"`
}
