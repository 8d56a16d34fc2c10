package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
)

// holders counts the nodes that hold value for key.
func holders(nodes []*testNode, p *clusterkit.Partition, key, value string) int {
	n := 0
	for _, node := range nodes {
		if e := entryOn(node, p, key); e.Value == value && !e.Deleted {
			n++
		}
	}
	return n
}

func TestSyncWriteIsAcknowledgedByAMajority(t *testing.T) {
	nodes := formStores(t, 3, 16, ModeSync)
	activateAll(t, nodes)
	const key = "alpha"
	p, primary, _ := roles(t, nodes, key)
	if status, body, _ := do(t, http.MethodPut, primary.addr, key, "v1", nil); status != http.StatusNoContent {
		t.Fatalf("PUT with every replica up: got %d %s, want 204", status, body)
	}
	if got := holders(nodes, p, key, "v1"); got < 2 {
		t.Fatalf("after the acknowledgement %d nodes hold v1, want a majority (≥ 2 of 3)", got)
	}

	var replicas []*testNode
	for _, n := range nodes {
		if n != primary {
			replicas = append(replicas, n)
		}
	}
	replicas[0].cut()
	if status, body, _ := do(t, http.MethodPut, primary.addr, key, "v2", nil); status != http.StatusNoContent {
		t.Fatalf("PUT with one replica cut off: got %d %s, want 204 (primary + one replica is a majority)", status, body)
	}
	if status, body, _ := do(t, http.MethodGet, primary.addr, key, "", nil); status != http.StatusOK || body != "v2" {
		t.Fatalf("GET with one replica cut off: got %d %q, want 200 \"v2\"", status, body)
	}

	replicas[1].cut()
	if status, body, _ := do(t, http.MethodPut, primary.addr, key, "v3", nil); status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout {
		t.Fatalf("PUT with both replicas cut off: got %d %s, want 503 or 504 (no majority)", status, body)
	}
	if e := entryOn(primary, p, key); e.Value != "v2" {
		t.Fatalf("the primary applied a write no majority acknowledged: it holds %q, want \"v2\"", e.Value)
	}
	if status, body, _ := do(t, http.MethodGet, primary.addr, key, "", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("GET with both replicas cut off: got %d %q, want 503 (the primary cannot confirm its epoch)", status, body)
	}
}

func TestAsyncWriteIsAcknowledgedByThePrimary(t *testing.T) {
	nodes := formStores(t, 3, 16, ModeAsync)
	activateAll(t, nodes)
	const key = "alpha"
	p, primary, _ := roles(t, nodes, key)
	for _, n := range nodes {
		if n != primary {
			n.cut()
		}
	}
	if status, body, _ := do(t, http.MethodPut, primary.addr, key, "v1", nil); status != http.StatusNoContent {
		t.Fatalf("async PUT with both replicas cut off: got %d %s, want 204", status, body)
	}
	if status, body, _ := do(t, http.MethodGet, primary.addr, key, "", nil); status != http.StatusOK || body != "v1" {
		t.Fatalf("async GET: got %d %q, want 200 \"v1\"", status, body)
	}
	if got := holders(nodes, p, key, "v1"); got != 1 {
		t.Fatalf("%d nodes hold v1, want only the primary", got)
	}
}

// postInternal sends one node-to-node call and returns the status and the
// newest epoch of a refusal.
func postInternal(t *testing.T, addr, path string, msg any) (int, uint64) {
	t.Helper()
	b, _ := json.Marshal(msg)
	resp, err := http.Post("http://"+addr+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r refusal
	if resp.StatusCode == http.StatusConflict {
		json.NewDecoder(resp.Body).Decode(&r)
	}
	return resp.StatusCode, r.Newest
}

func TestEpochs(t *testing.T) {
	nodes := formStores(t, 3, 16, ModeSync)
	const key = "alpha"
	p, primary, replica := roles(t, nodes, key)
	if status, _, _ := do(t, http.MethodPut, primary.addr, key, "v1", nil); status != http.StatusNoContent {
		t.Fatalf("PUT: got %d, want 204", status)
	}

	t.Run("a replica refuses a write of an older epoch", func(t *testing.T) {
		old := replicateRequest{Partition: p.Index, Epoch: p.Epoch - 1, Key: key, Entry: Entry{Value: "stale", Version: Version{Epoch: p.Epoch - 1, Seq: 99}}}
		status, newest := postInternal(t, replica.addr, pathReplicate, old)
		if status != http.StatusConflict || newest != p.Epoch {
			t.Fatalf("replicate at epoch %d: got %d newest %d, want 409 newest %d", p.Epoch-1, status, newest, p.Epoch)
		}
		if e := entryOn(replica, p, key); e.Value == "stale" {
			t.Fatalf("the replica applied a write it refused: it holds %+v", e)
		}
	})

	t.Run("a primary whose replicas know a newer epoch stops acknowledging", func(t *testing.T) {
		// A new primary's fence, as after a map change this primary has
		// not seen yet.
		for _, n := range nodes {
			if n != primary {
				if status, _ := postInternal(t, n.addr, pathFence, fenceRequest{Partition: p.Index, Epoch: p.Epoch + 1}); status != http.StatusOK {
					t.Fatalf("fence at epoch %d: got %d, want 200", p.Epoch+1, status)
				}
			}
		}
		status, body, _ := do(t, http.MethodPut, primary.addr, key, "v2", nil)
		if status != http.StatusGatewayTimeout {
			t.Fatalf("PUT to the old primary: got %d %s, want 504 (refused by the replicas)", status, body)
		}
		if e := entryOn(primary, p, key); e.Value != "v1" {
			t.Fatalf("the old primary applied a refused write: it holds %q", e.Value)
		}
		// It learned the newer epoch from the refusals: it now refuses
		// at once, reads too.
		if status, body, _ := do(t, http.MethodPut, primary.addr, key, "v3", nil); status != http.StatusServiceUnavailable {
			t.Fatalf("second PUT to the old primary: got %d %s, want 503", status, body)
		}
		if status, body, _ := do(t, http.MethodGet, primary.addr, key, "", nil); status != http.StatusServiceUnavailable {
			t.Fatalf("GET from the old primary: got %d %q, want 503", status, body)
		}
	})
}

func TestTakeOverKeepsWritesAMajorityAcknowledged(t *testing.T) {
	nodes := formStores(t, 3, 64, ModeSync)
	activateAll(t, nodes)
	a, b := nodes[0], nodes[1]
	c := a.ck.GetCluster()
	// Keys of the partitions node-1 leads, written while node-2 is cut
	// off: only node-1 and node-3 hold them.
	keys := map[string]int{} // key → partition
	for i := 0; len(keys) < 200 && i < 100000; i++ {
		k := "k" + strconv.Itoa(i)
		if p, _ := a.ck.GetPartition(k); p.PrimaryNode == "node-1" {
			keys[k] = p.Index
		}
	}
	b.cut()
	for k := range keys {
		if status, body, _ := do(t, http.MethodPut, a.addr, k, "v-"+k, nil); status != http.StatusNoContent {
			t.Fatalf("PUT %s: got %d %s", k, status, body)
		}
	}
	b.reopen(t)
	a.cut()
	a.ck.Halt()
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(b.ck, nodes[2].ck) }, "the survivors never agreed")

	tookOver := 0
	for i, p := range b.ck.GetCluster().Partitions {
		if c.Partitions[i].PrimaryNode == "node-1" && p.PrimaryNode == "node-2" {
			tookOver++
		}
	}
	if tookOver == 0 {
		t.Fatalf("node-2 became primary of none of node-1's %d partitions; the test needs some", len(keys))
	}
	for k := range keys {
		if status, body, _ := do(t, http.MethodGet, nodes[2].addr, k, "", nil); status != http.StatusOK || body != "v-"+k {
			t.Fatalf("GET %s after the take-over: got %d %q, want 200 %q", k, status, body, "v-"+k)
		}
	}
	t.Logf("node-2 took over %d partitions it had missed writes of", tookOver)
}

func TestForwarding(t *testing.T) {
	nodes := formStores(t, 3, 16, ModeServerSide)
	const key = "alpha"
	p, primary, replica := roles(t, nodes, key)
	status, body, h := do(t, http.MethodPut, replica.addr, key, "v1", nil)
	if status != http.StatusNoContent {
		t.Fatalf("PUT via a replica: got %d %s, want 204", status, body)
	}
	if by, served := h.Get(HeaderForwardedBy), h.Get(HeaderNode); by != replica.ck.GetMyNodeID() || served != p.PrimaryNode {
		t.Fatalf("PUT via %s: forwarded by %q, served by %q; want forwarded by %s to %s", replica.ck.GetMyNodeID(), by, served, replica.ck.GetMyNodeID(), p.PrimaryNode)
	}
	for _, n := range nodes {
		if status, body, _ := do(t, http.MethodGet, n.addr, key, "", nil); status != http.StatusOK || body != "v1" {
			t.Fatalf("GET via %s: got %d %q, want 200 \"v1\"", n.ck.GetMyNodeID(), status, body)
		}
	}
	status, body, _ = do(t, http.MethodGet, replica.addr, key, "", http.Header{HeaderForwardedBy: {"node-9"}})
	if status != http.StatusServiceUnavailable {
		t.Fatalf("GET forwarded to a node that is not the primary: got %d %q, want 503 (no second forward)", status, body)
	}
	if status, _, _ := do(t, http.MethodDelete, primary.addr, key, "", nil); status != http.StatusNoContent {
		t.Fatalf("DELETE: got %d, want 204", status)
	}
	if status, _, _ := do(t, http.MethodGet, replica.addr, key, "", nil); status != http.StatusNotFound {
		t.Fatalf("GET after DELETE: got %d, want 404", status)
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestJoinCopiesPartitions(t *testing.T) {
	nodes := formStores(t, 3, 16, ModeSync)
	const n = 200
	for i := range n {
		k := fmt.Sprintf("k%03d", i)
		if status, body, _ := do(t, http.MethodPut, nodes[i%3].addr, k, "v"+k, nil); status != http.StatusNoContent {
			t.Fatalf("PUT %s: got %d %s", k, status, body)
		}
	}
	joined := addStore(t, nodes, "node-4", 16, ModeSync)
	nodes = append(nodes, joined)
	waitAgreed(t, nodes)
	served := joined.ck.GetPartitionsForNode("node-4")
	if len(served) == 0 {
		t.Fatal("node-4 serves no partition after the rebalance")
	}
	want := 0
	for i := range n {
		k := fmt.Sprintf("k%03d", i)
		p, _ := joined.ck.GetPartition(k)
		for _, q := range served {
			if q.Index == p.Index {
				want++
				if e := entryOn(joined, p, k); e.Value != "v"+k {
					t.Fatalf("node-4 serves %s but holds %q for %s, want %q", p.ID, e.Value, k, "v"+k)
				}
			}
		}
		if status, body, _ := do(t, http.MethodGet, joined.addr, k, "", nil); status != http.StatusOK || body != "v"+k {
			t.Fatalf("GET %s via node-4: got %d %q", k, status, body)
		}
	}
	t.Logf("node-4 serves %d partitions holding %d of the %d keys", len(served), want, n)
}

func TestStreamedCopyMergesByVersion(t *testing.T) {
	ck, err := clusterkit.New(clusterkit.Options{NodeID: "n", HTTPAddr: "127.0.0.1:0", PartitionCount: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Stop(context.Background())
	target, err := New(ck, ModeSync, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	source, err := New(ck, ModeSync, nil) // serves the stream
	if err != nil {
		t.Fatal(err)
	}
	defer source.Close()

	v := func(e, s uint64) Version { return Version{Epoch: e, Seq: s} }
	pt := target.parts[1]
	pt.entries = map[string]Entry{
		"newer-here": {Value: "written during the copy", Version: v(5, 1)},
		"older-here": {Value: "old", Version: v(3, 1)},
		"deleted":    {Deleted: true, Version: v(4, 1)},
	}
	source.parts[1].entries = map[string]Entry{
		"newer-here": {Value: "stale copy", Version: v(4, 9)},
		"older-here": {Value: "newer copy", Version: v(3, 2)},
		"deleted":    {Value: "resurrected", Version: v(2, 1)},
		"missing":    {Value: "copied", Version: v(1, 1)},
	}
	srv := &http.Server{Handler: source.Handler()}
	ln := listen(t)
	go srv.Serve(ln)
	defer srv.Close()

	n, err := target.copyPartition(context.Background(), ln.Addr().String(), 1)
	if err != nil || n != 4 {
		t.Fatalf("copyPartition: got %d entries, %v; want 4, nil", n, err)
	}
	for _, tc := range []struct {
		key  string
		want Entry
	}{
		{"newer-here", Entry{Value: "written during the copy", Version: v(5, 1)}},
		{"older-here", Entry{Value: "newer copy", Version: v(3, 2)}},
		{"deleted", Entry{Deleted: true, Version: v(4, 1)}},
		{"missing", Entry{Value: "copied", Version: v(1, 1)}},
	} {
		if got := pt.entries[tc.key]; got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.key, got, tc.want)
		}
	}
}
