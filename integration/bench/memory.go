package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/clusterkit-go/clusterkit/embedetcd"
)

// rssMB returns the resident set size of process pid in MB (VmRSS).
func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				return 0, fmt.Errorf("VmRSS of process %d: %q", pid, v)
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// externalRSS starts n kvstore nodes as clients of one etcd member (in
// this process) and returns each one's RSS in MB once all agree. Each node
// is the only one of its localcluster, so none is given -join (which
// external mode refuses).
func externalRSS(ctx context.Context, cfg config, n int) ([]float64, error) {
	dir, err := os.MkdirTemp("", "bench-external-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	m, err := embedetcd.Start(ctx, embedetcd.FastTestConfig("bench-external", dir))
	if err != nil {
		return nil, err
	}
	defer m.Stop()
	var clusters []*kvCluster
	defer func() {
		for _, c := range clusters {
			c.Close()
		}
	}()
	for i := range n {
		c, err := newKV(cfg, "-etcd", m.ClientURL())
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
		if _, err := c.Start(ctx, fmt.Sprintf("external-%d", i+1)); err != nil {
			return nil, fmt.Errorf("external node: %w", err)
		}
	}
	// Every node sees all n once the last one's map settled everywhere.
	for _, c := range clusters {
		if err := waitMembers(ctx, c, n); err != nil {
			return nil, err
		}
	}
	var out []float64
	for _, c := range clusters {
		mb, err := rssMB(c.Running()[0].Pid())
		if err != nil {
			return nil, err
		}
		out = append(out, mb)
	}
	return out, nil
}

// waitMembers waits until c's only node sees n members and a settled map.
func waitMembers(ctx context.Context, c *kvCluster, n int) error {
	node := c.Running()[0]
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		v, err := node.ReadView(wctx)
		if err == nil && v.Settled && len(v.Members) == n {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("external node %s never saw %d members: %w", node.ID, n, wctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
