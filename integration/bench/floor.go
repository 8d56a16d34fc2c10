package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/clusterkit-go/clusterkit/embedetcd"
)

// floorRun is how long the etcdfloor processes run before they are
// measured: about as long as the nodes of a formation run before theirs.
const floorRun = 10 * time.Second

// floorMemory builds integration/bench/etcdfloor, runs n of it against
// one etcd member (in this process) for floorRun, and returns their
// memory: what any process holding a lease and a watch through etcd's Go
// client costs, before ClusterKit (README "Benchmarks", the memory rows).
func floorMemory(ctx context.Context, n int) (memories, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-floor-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	m, err := embedetcd.Start(ctx, embedetcd.FastTestConfig("bench-floor", filepath.Join(dir, "etcd")))
	if err != nil {
		return nil, err
	}
	defer m.Stop()
	bin := filepath.Join(dir, "etcdfloor")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./integration/bench/etcdfloor")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build etcdfloor: %w: %s", err, out)
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
	for range n {
		p := exec.CommandContext(ctx, bin, "-etcd", m.ClientURL())
		p.Stderr = os.Stderr
		if err := p.Start(); err != nil {
			return nil, fmt.Errorf("etcdfloor: %w", err)
		}
		procs = append(procs, p)
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(floorRun):
	}
	var out memories
	var errs []error
	for _, p := range procs {
		m, err := memoryOf(p.Process.Pid)
		errs = append(errs, err)
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}
