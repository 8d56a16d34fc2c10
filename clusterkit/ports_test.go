package clusterkit

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"
)

// fastNodeOptions are options for one fast embedded test node.
func fastNodeOptions(t *testing.T, id, httpAddr string) Options {
	return Options{NodeID: id, HTTPAddr: httpAddr, DataDir: t.TempDir(), PartitionCount: 4, ReplicationFactor: 1,
		LeaseTTL: 2 * time.Second, Embedded: EmbeddedConfig{TickInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond}}
}

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func TestDefaultEmbedAddrs(t *testing.T) {
	o := fastNodeOptions(t, "n", "127.0.0.1:8080")
	client, peer, err := defaultEmbedAddrs(&o)
	if err != nil || client != "127.0.0.1:18080" || peer != "127.0.0.1:28080" {
		t.Fatalf("HTTP port 8080: %s, %s, %v; want the derived 18080 and 28080", client, peer, err)
	}
	// Above 45535 the derived ports do not exist: free ports, kept.
	o.HTTPAddr = "127.0.0.1:50000"
	client, peer, err = defaultEmbedAddrs(&o)
	if err != nil || port(t, client) == 0 || port(t, peer) == 0 || client == peer {
		t.Fatalf("HTTP port 50000: %s, %s, %v; want two distinct free ports", client, peer, err)
	}
	client2, peer2, err := defaultEmbedAddrs(&o)
	if err != nil || client2 != client || peer2 != peer {
		t.Fatalf("second start: %s, %s, %v; want the kept %s, %s", client2, peer2, err, client, peer)
	}
	// Port 0: any client port at every start, a kept peer port.
	o.HTTPAddr = "127.0.0.1:0"
	client, peer3, err := defaultEmbedAddrs(&o)
	if err != nil || port(t, client) != 0 || peer3 != peer {
		t.Fatalf("HTTP port 0: %s, %s, %v; want client port 0 and the kept peer %s", client, peer3, err, peer)
	}
}

// highFreePort returns a free loopback port above 45535 (where HTTP port
// + 20000 is no port), binding candidates itself rather than relying on
// the kernel's ephemeral range.
func highFreePort(t *testing.T) string {
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(45536+rand.IntN(65535-45536)))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken
		}
		l.Close()
		return addr
	}
	t.Fatal("no free loopback port above 45535 in 200 tries")
	return ""
}

// A node whose HTTP port is above 45535 starts with embedded etcd, and
// starts again on the same data dir (its etcd ports were kept).
func TestEmbeddedNodeWithHighHTTPPortStartsAndRestarts(t *testing.T) {
	o := fastNodeOptions(t, "high", highFreePort(t))
	for i := range 2 {
		ck, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = ck.Start(ctx)
		cancel()
		if err != nil {
			t.Fatalf("start %d with HTTPAddr %s: %v", i+1, o.HTTPAddr, err)
		}
		if p, err := ck.GetPartition("k"); err != nil || ck.GetPrimary(p).ID != "high" {
			t.Fatalf("start %d: GetPartition: %v, %v", i+1, p, err)
		}
		if err := ck.Stop(context.Background()); err != nil {
			t.Fatalf("stop %d: %v", i+1, err)
		}
	}
}

// Custom data lives outside the watched prefix: writing it delivers no
// batch to any node.
func TestCustomDataWakesNoWatcher(t *testing.T) {
	ck, err := New(fastNodeOptions(t, "solo", "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ck.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ck.Stop(context.Background())
	f := ck.active.Load().follower
	// Let the node settle (its own ready record, health), then write.
	for {
		next := f.nextApply()
		select {
		case <-next:
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
	next := f.nextApply()
	for i := range 20 {
		if err := ck.SetCustomData(ctx, "k"+strconv.Itoa(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-next:
		t.Fatal("SetCustomData delivered a watch batch: custom data is under the watched prefix")
	case <-time.After(300 * time.Millisecond):
	}
}
