package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/clusterkit"
	"github.com/clusterkit-go/clusterkit/clusterkit/clustertest"
	"github.com/clusterkit-go/clusterkit/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// testNode is one store on an in-process ClusterKit node.
type testNode struct {
	ck    *clusterkit.ClusterKit
	store *Store
	addr  string
	dir   string // the node's DataDir
	srv   *http.Server
	ln    net.Listener

	mu     sync.Mutex
	closed bool
}

// cut stops the node's store server (ClusterKit keeps running), as if its
// store port were unreachable.
func (n *testNode) cut() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.srv.Close()
		n.closed = true
	}
}

// reopen serves the store on its address again after cut.
func (n *testNode) reopen(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		t.Fatalf("reopen %s: %v", n.addr, err)
	}
	n.srv = &http.Server{Handler: n.store.Handler()}
	n.closed = false
	go n.srv.Serve(ln)
}

// formStores forms an n-node cluster (clustertest: real embedded etcd,
// RF 3) of the given partition count with a store on every node.
func formStores(t *testing.T, count, partitions int, mode Mode) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := 1; i <= count; i++ {
		nodes = append(nodes, addStore(t, nodes, fmt.Sprintf("node-%d", i), partitions, mode))
	}
	waitAgreed(t, nodes)
	return nodes
}

// addStore starts one more node with a store, joining through nodes[0].
func addStore(t *testing.T, nodes []*testNode, id string, partitions int, mode Mode) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{ln: ln, addr: ln.Addr().String()}
	o := clustertest.Options(t, id)
	o.Services = map[string]string{ServiceName: n.addr}
	n.dir = o.DataDir
	o.PartitionCount = partitions
	if len(nodes) > 0 {
		o.JoinAddr = clustertest.Addr(nodes[0].ck)
	}
	clustertest.Start(t, o, func(ck *clusterkit.ClusterKit) {
		s, err := New(ck, mode, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.ck, n.store = ck, s
		n.srv = &http.Server{Handler: s.Handler()}
		go n.srv.Serve(ln)
		t.Cleanup(func() { // registered before clustertest's Stop, so it runs after it
			n.cut()
			s.Close()
		})
	})
	return n
}

// waitAgreed waits until every node of nodes holds the same settled map.
func waitAgreed(t *testing.T, nodes []*testNode) {
	t.Helper()
	cks := make([]*clusterkit.ClusterKit, len(nodes))
	for i, n := range nodes {
		cks[i] = n.ck
	}
	clustertest.Eventually(t, 30*time.Second, func() bool { return clustertest.Agreed(cks...) }, "%d nodes never agreed on one map", len(nodes))
}

// roles returns the primary of key's partition and one replica.
func roles(t *testing.T, nodes []*testNode, key string) (p *clusterkit.Partition, primary, replica *testNode) {
	t.Helper()
	p, err := nodes[0].ck.GetPartition(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		switch id := n.ck.GetMyNodeID(); {
		case id == p.PrimaryNode:
			primary = n
		case replica == nil && len(p.ReplicaNodes) > 0 && id == p.ReplicaNodes[0]:
			replica = n
		}
	}
	if primary == nil {
		t.Fatalf("no node is primary of %s", p.ID)
	}
	return p, primary, replica
}

// do sends one client request to node at addr and returns the status,
// the body and the response headers.
func do(t *testing.T, method, addr, key, value string, header http.Header) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if value != "" {
		body = strings.NewReader(value)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/kv/"+key, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s via %s: %v", method, key, addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// entryOn returns what node n holds for key.
func entryOn(n *testNode, p *clusterkit.Partition, key string) Entry {
	pt := n.store.parts[p.Index]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.entries[key]
}

// waitActive waits until the primary of p took it over in p's epoch.
func waitActive(t *testing.T, n *testNode, p *clusterkit.Partition) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.store.ensureActive(ctx, p); err != nil && !errors.Is(err, errNotApplied) {
		t.Fatal(err)
	} else if err != nil {
		t.Fatalf("take-over of %s: %v", p.ID, err)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// activateAll waits until every primary took its partitions over, so that
// a test can then cut nodes off (a take-over waits for every live member).
func activateAll(t *testing.T, nodes []*testNode) {
	t.Helper()
	for _, n := range nodes {
		for _, p := range n.ck.GetPartitionsForNode(n.ck.GetMyNodeID()) {
			if p.PrimaryNode == n.ck.GetMyNodeID() {
				waitActive(t, n, p)
			}
		}
	}
}
