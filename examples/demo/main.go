// Command demo shows ClusterKit at work on a replicated key-value store
// (examples/kvstore, sync mode) whose nodes are separate processes on
// loopback, on embedded etcd: three nodes form a cluster, a fourth joins
// and partitions hand off, one node is killed with SIGKILL and the
// survivors promote replicas when its lease expires, it comes back and
// rejoins — while a client writes and reads through random nodes. It ends
// with every node's share and a check that every acknowledged write is
// readable, and exits 0 when all went well.
//
//	go run ./examples/demo          # about 20 s, then exits
//	go run ./examples/demo -keep    # then keeps the cluster running and prints the node URLs
//
// The nodes are this program, started again as children; they die with
// it, and their temp directory is removed on exit (Ctrl-C included).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clusterkit-go/clusterkit/examples/kvstore/localcluster"
)

func main() {
	localcluster.RunChildIfRequested()
	keep := flag.Bool("keep", false, "keep the cluster running at the end and print the node URLs (Ctrl-C stops it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *keep); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "demo: interrupted; every node stopped and the temp directory is removed")
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "demo FAILED: %v\n", err)
		os.Exit(1)
	}
}

// Demo settings.
const (
	partitions = 64
	replicas   = 3
	leaseTTL   = 2 * time.Second
	keys       = 1000
	rate       = 300 // client operations per second
	pause      = 2 * time.Second
)

// run plays the demo, narrating on out.
func run(ctx context.Context, out io.Writer, keep bool) error {
	cmd, err := localcluster.SelfCommand()
	if err != nil {
		return err
	}
	d := newDemo(out)
	c, err := localcluster.New(localcluster.Options{Command: cmd, Partitions: partitions,
		ReplicationFactor: replicas, LeaseTTL: leaseTTL, Events: d.events.Add})
	if err != nil {
		return err
	}
	defer c.Close()
	d.cluster = c
	d.say("ClusterKit demo: a key-value store (examples/kvstore, sync: a write is acknowledged once a majority of its partition's replicas hold it)")
	d.say("on separate processes with embedded etcd, loopback only; %d partitions × RF %d, lease TTL %v; data and logs in %s", partitions, replicas, leaseTTL, c.Dir())

	err = d.play(ctx, keep)
	if err != nil && ctx.Err() == nil {
		d.showLogTail()
	}
	return err
}

// play runs the steps in order; the first failure ends the demo.
func (d *demo) play(ctx context.Context, keep bool) error {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"form a 3-node cluster", d.form},
		{"start the client", d.startTraffic},
		{"node-4 joins", d.join},
		{"node-2 is killed", d.kill},
		{"node-2 comes back", d.restart},
		{"check every acknowledged write", d.verdict},
	}
	for _, s := range steps {
		sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		err := s.run(sctx)
		cancel()
		if err == nil && s.name != "check every acknowledged write" {
			err = sleep(ctx, pause) // the client goes on meanwhile
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("step %q: %w", s.name, err)
		}
	}
	if keep {
		return d.keep(ctx)
	}
	return nil
}
