package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
	"github.com/clusterkit-go/clusterkit/examples/kvstore/store"
)

// demo holds the cluster, the client traffic and what the nodes reported.
type demo struct {
	out     io.Writer
	began   time.Time
	cluster *localcluster.Cluster
	events  localcluster.EventLog

	traffic     *traffic
	stopTraffic context.CancelFunc
	trafficDone chan struct{}
}

func newDemo(out io.Writer) *demo { return &demo{out: out, began: time.Now()} }

// say prints one narrated line, stamped with the time since the start.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.began).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) form(ctx context.Context) error {
	t := time.Now()
	for _, id := range []string{"node-1", "node-2", "node-3"} {
		if _, err := d.cluster.Start(ctx, id); err != nil {
			return err
		}
	}
	if _, err := d.cluster.WaitSettled(ctx); err != nil {
		return err
	}
	d.say("3 nodes formed one cluster in %v (node-1 bootstrapped etcd; node-2 and node-3 joined as etcd voters)", since(t))
	d.summarize(0)
	return nil
}

func (d *demo) startTraffic(ctx context.Context) error {
	d.traffic = newTraffic(d.cluster, keys)
	tctx, cancel := context.WithCancel(context.Background())
	d.stopTraffic, d.trafficDone = cancel, make(chan struct{})
	go func() {
		defer close(d.trafficDone)
		d.traffic.run(tctx, rate)
	}()
	d.say("a client writes %d keys, then reads and writes random ones (%d ops/s), each through a random node", keys, rate)
	for d.traffic.writes() < keys {
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	d.say("the client wrote all %d keys", keys)
	return nil
}

func (d *demo) join(ctx context.Context) error {
	mark := d.events.Len()
	t := time.Now()
	d.say("node-4 starts and joins")
	if _, err := d.cluster.Start(ctx, "node-4"); err != nil {
		return err
	}
	if _, err := d.cluster.WaitSettled(ctx); err != nil {
		return err
	}
	rb, ok := d.events.First(mark, func(e store.Event) bool {
		return e.Kind == store.EventRebalanceComplete && e.Subject == "node-4"
	})
	if !ok {
		return fmt.Errorf("no node reported the rebalance node-4 caused")
	}
	d.say("node-4 serves its share: rebalance #%d handed off %d partition copies in %v; every node settled %v after node-4 started",
		rb.Rebalance, rb.Moves, rb.Duration.Round(time.Millisecond), since(t))
	d.summarize(mark)
	return nil
}

func (d *demo) kill(ctx context.Context) error {
	v, err := d.cluster.WaitSettled(ctx)
	if err != nil {
		return err
	}
	led := 0
	for _, p := range v.Partitions {
		if p.Primary == "node-2" {
			led++
		}
	}
	mark := d.events.Len()
	t := time.Now()
	d.cluster.Node("node-2").Kill()
	d.say("node-2 killed with SIGKILL (it was primary of %d partitions and an etcd voter); no goodbye", led)
	leave, err := d.events.Wait(ctx, mark, func(e store.Event) bool {
		return e.Kind == store.EventLeave && e.Subject == "node-2"
	})
	if err != nil {
		return fmt.Errorf("no survivor noticed node-2 leave: %w", err)
	}
	d.say("%s noticed node-2 left (%s) %v after the kill (lease TTL %v)", leave.Node, leave.Reason, leave.At.Sub(t).Round(time.Millisecond), leaseTTL)
	if err := d.cluster.WaitFailedOver(ctx, "node-2"); err != nil {
		return err
	}
	promoted := 0
	for _, e := range d.events.Since(mark) {
		if e.Kind == store.EventPartitionGain && e.Promoted {
			promoted++
		}
	}
	d.say("replicas took over at once: %d promoted to primary, every partition served %v after the kill; node-2's replica slots are held for the rebalance delay (30 s), so nothing is copied yet",
		promoted, since(t))
	d.summarize(mark)
	return nil
}

func (d *demo) restart(ctx context.Context) error {
	mark := d.events.Len()
	t := time.Now()
	d.say("node-2 restarts with the same options and data directory")
	if _, err := d.cluster.Start(ctx, "node-2"); err != nil {
		return err
	}
	rejoin, err := d.events.Wait(ctx, mark, func(e store.Event) bool {
		return e.Kind == store.EventRejoin && e.Subject == "node-2"
	})
	if err != nil {
		return fmt.Errorf("no node reported node-2 rejoining: %w", err)
	}
	if _, err := d.cluster.WaitSettled(ctx); err != nil {
		return err
	}
	d.say("node-2 rejoined within the delay after %v offline and got its own slots back (no other node's placement moved); every node settled %v after it started",
		rejoin.Duration.Round(time.Millisecond), since(t))
	d.summarize(mark)
	return nil
}

func (d *demo) verdict(ctx context.Context) error {
	d.stopTraffic()
	<-d.trafficDone
	tr := d.traffic
	defer tr.http.CloseIdleConnections()
	if _, err := d.cluster.WaitSettled(ctx); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\n  %-8s %9s %9s %6s\n", "node", "primaries", "replicas", "keys")
	for _, n := range d.cluster.Running() {
		st, err := stats(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(d.out, "  %-8s %9d %9d %6d\n", n.ID, st.Primaries, st.Replicas, st.Keys)
	}
	fmt.Fprintln(d.out)
	d.say("client: %d writes acknowledged, %d with unknown outcome (timed out in a fault), %d refused before applying; %d reads, %d stale",
		tr.acked.Load(), tr.unknown.Load(), tr.refused.Load(), tr.reads.Load(), tr.staleReads.Load())
	checked, lost, err := tr.verify(ctx)
	if err != nil {
		return err
	}
	if len(lost) > 0 || tr.staleReads.Load() > 0 {
		return fmt.Errorf("%d of %d keys lost an acknowledged write (%s); %d reads were stale",
			len(lost), checked, strings.Join(lost[:min(5, len(lost))], ", "), tr.staleReads.Load())
	}
	d.say("verdict: OK — every acknowledged write is readable (%d keys read back through random nodes, 0 lost, 0 stale reads)", checked)
	return nil
}

// keep prints the nodes' URLs and waits for Ctrl-C.
func (d *demo) keep(ctx context.Context) error {
	d.say("the cluster keeps running; Ctrl-C stops every node")
	for _, n := range d.cluster.Running() {
		fmt.Fprintf(d.out, "  %-8s store http://%s/kv/{key}   ClusterKit http://%s/cluster\n", n.ID, n.API, n.HTTP)
	}
	fmt.Fprintln(d.out, "  (dashboard: none yet)")
	<-ctx.Done()
	return nil
}

// summarize prints one line per kind of event the nodes reported since
// mark.
func (d *demo) summarize(mark int) {
	for _, line := range summary(d.events.Since(mark)) {
		fmt.Fprintf(d.out, "         · %s\n", line)
	}
}

// showLogTail prints the end of every node's log after a failure.
func (d *demo) showLogTail() {
	for _, id := range []string{"node-1", "node-2", "node-3", "node-4"} {
		b, err := os.ReadFile(filepath.Join(d.cluster.Dir(), id+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fmt.Fprintf(d.out, "---- last lines of %s's log\n%s\n", id, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
