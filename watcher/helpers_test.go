package watcher

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// eventually is the generous bound for "eventually" checks: the machine is
// small and shared, so only a real hang should hit it.
const eventually = 60 * time.Second

// ctxT returns a context bounded by eventually and cancelled at the end of
// the test.
func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	t.Cleanup(cancel)
	return ctx
}

// newClient returns a client of endpoint, closed by t.Cleanup.
func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	return etcdtest.NewClient(t, endpoint)
}

// startWatch starts a watcher closed by t.Cleanup (before the client,
// whose cleanup was registered earlier).
func startWatch(t *testing.T, cli *clientv3.Client, prefix string, opts ...Option) *Watcher {
	t.Helper()
	w, err := Watch(context.Background(), cli, prefix, opts...)
	if err != nil {
		t.Fatalf("Watch(%q): %v", prefix, err)
	}
	t.Cleanup(w.Close)
	return w
}

// retry runs op until it succeeds, each try bounded by 2 s, for at most
// eventually. For writes while etcd restarts or recovers.
func retry(t *testing.T, what string, op func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := op(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, eventually, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustPut(t *testing.T, cli *clientv3.Client, k, v string) int64 {
	t.Helper()
	var rev int64
	retry(t, "put "+k, func(ctx context.Context) error {
		resp, err := cli.Put(ctx, k, v)
		if err == nil {
			rev = resp.Header.Revision
		}
		return err
	})
	return rev
}

// mustDelete deletes k and returns etcd's revision after it.
func mustDelete(t *testing.T, cli *clientv3.Client, k string) int64 {
	t.Helper()
	var rev int64
	retry(t, "delete "+k, func(ctx context.Context) error {
		resp, err := cli.Delete(ctx, k)
		if err == nil {
			rev = resp.Header.Revision
		}
		return err
	})
	return rev
}

// entry is one key of a consumer's view or of etcd's state.
type entry struct {
	value       string
	create, mod int64
}

// etcdState reads prefix directly from etcd.
func etcdState(t *testing.T, cli *clientv3.Client, prefix string) (map[string]entry, int64) {
	t.Helper()
	var resp *clientv3.GetResponse
	retry(t, "get "+prefix, func(ctx context.Context) error {
		var err error
		resp, err = cli.Get(ctx, prefix, clientv3.WithPrefix())
		return err
	})
	m := make(map[string]entry, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = entry{value: string(kv.Value), create: kv.CreateRevision, mod: kv.ModRevision}
	}
	return m, resp.Header.Revision
}

// view is a consumer that applies batches and checks, on every batch, the
// contract: revisions grow, PrevValue is the value the consumer holds, a
// Delete removes a key the consumer holds, a Put changes something, and no
// change is delivered twice.
type view struct {
	t       *testing.T
	prefix  string
	kvs     map[string]entry
	rev     int64
	seen    map[string]bool // "key@modRevision" of every Put delivered
	batches []Batch
	resyncs int
	// coalesced counts the Coalesced batches; noPrevValues: the watcher
	// runs WithoutPrevValues (PrevValue is empty, not the held value).
	coalesced    int
	noPrevValues bool
}

func newView(t *testing.T, prefix string) *view {
	return &view{t: t, prefix: prefix, kvs: map[string]entry{}, seen: map[string]bool{}}
}

func (v *view) apply(b Batch) {
	t := v.t
	t.Helper()
	if len(v.batches) == 0 != b.Initial {
		t.Fatalf("batch %d: Initial = %v, want %v", len(v.batches), b.Initial, len(v.batches) == 0)
	}
	if b.Initial && (b.Resync || b.Coalesced) || b.Resync && b.Coalesced {
		t.Fatalf("batch %d: Initial %v, Resync %v, Coalesced %v: at most one", len(v.batches), b.Initial, b.Resync, b.Coalesced)
	}
	if !b.Initial && len(b.Events) == 0 {
		t.Fatalf("empty non-initial batch at revision %d", b.Revision)
	}
	if b.Revision <= v.rev {
		t.Fatalf("batch revision %d after %d: want strictly increasing", b.Revision, v.rev)
	}
	v.batches = append(v.batches, b)
	if b.Resync {
		v.resyncs++
	}
	if b.Coalesced {
		v.coalesced++
	}
	for i, e := range b.Events {
		where := fmt.Sprintf("batch@%d (initial=%v resync=%v coalesced=%v) event %d %s %q", b.Revision, b.Initial, b.Resync, b.Coalesced, i, e.Type, e.Key)
		if !strings.HasPrefix(e.Key, v.prefix) {
			t.Fatalf("%s: key outside prefix %q", where, v.prefix)
		}
		if !b.Initial && !b.Resync && !b.Coalesced && e.ModRevision != b.Revision {
			t.Fatalf("%s: ModRevision %d in a live batch of revision %d", where, e.ModRevision, b.Revision)
		}
		if e.ModRevision > b.Revision {
			t.Fatalf("%s: ModRevision %d above batch revision %d", where, e.ModRevision, b.Revision)
		}
		cur, had := v.kvs[e.Key]
		held := []byte(cur.value)
		if v.noPrevValues {
			held = []byte{}
		}
		if had != (e.PrevValue != nil) || (had && !bytes.Equal(e.PrevValue, held)) {
			t.Fatalf("%s: PrevValue %q (nil=%v), consumer holds %q (present=%v)", where, e.PrevValue, e.PrevValue == nil, cur.value, had)
		}
		switch e.Type {
		case Put:
			if e.Value == nil {
				t.Fatalf("%s: nil Value", where)
			}
			if had && e.ModRevision <= cur.mod {
				t.Fatalf("%s: ModRevision %d not after the held %d: a repeat or a no-op", where, e.ModRevision, cur.mod)
			}
			if had && e.CreateRevision != cur.create {
				t.Fatalf("%s: update changes CreateRevision %d → %d without a Delete", where, cur.create, e.CreateRevision)
			}
			id := fmt.Sprintf("%s@%d", e.Key, e.ModRevision)
			if v.seen[id] {
				t.Fatalf("%s: put %s delivered twice", where, id)
			}
			v.seen[id] = true
			v.kvs[e.Key] = entry{value: string(e.Value), create: e.CreateRevision, mod: e.ModRevision}
		case Delete:
			if !had {
				t.Fatalf("%s: delete of a key the consumer does not hold", where)
			}
			if e.CreateRevision != cur.create {
				t.Fatalf("%s: CreateRevision %d, held %d", where, e.CreateRevision, cur.create)
			}
			delete(v.kvs, e.Key)
		default:
			t.Fatalf("%s: bad type", where)
		}
	}
	v.rev = b.Revision
}

// readUntil receives and applies batches until cond holds (checked after
// each batch and once before waiting), failing after eventually.
func (v *view) readUntil(w *Watcher, what string, cond func() bool) {
	v.t.Helper()
	timer := time.NewTimer(eventually)
	defer timer.Stop()
	for !cond() {
		select {
		case b, ok := <-w.Batches():
			if !ok {
				v.t.Fatalf("waiting for %s: Batches closed (Err %v)", what, w.Err())
			}
			v.apply(b)
		case <-timer.C:
			v.t.Fatalf("waiting for %s: not after %s; view %s", what, eventually, v.dump())
		}
	}
}

// equals reports whether the view holds exactly the state want.
func (v *view) equals(want map[string]entry) bool {
	if len(v.kvs) != len(want) {
		return false
	}
	for k, e := range want {
		if v.kvs[k] != e {
			return false
		}
	}
	return true
}

// readUntilEqual reads until the view equals etcd's current state of the
// prefix (read once: the caller has finished writing).
func (v *view) readUntilEqual(w *Watcher, cli *clientv3.Client) {
	v.t.Helper()
	want, rev := etcdState(v.t, cli, v.prefix)
	v.readUntil(w, fmt.Sprintf("view = etcd's state at revision %d (%d keys)", rev, len(want)), func() bool { return v.equals(want) })
}

func (v *view) dump() string {
	keys := make([]string, 0, len(v.kvs))
	for k := range v.kvs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "rev %d:", v.rev)
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s=%q@%d", k, v.kvs[k].value, v.kvs[k].mod)
	}
	return sb.String()
}

// waitFor polls cond every 10 ms until it holds, failing after eventually.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %s", what, eventually)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
