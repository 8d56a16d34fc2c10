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

// memory is what a process holds, in MB: rss is its resident set,
// anon the part of it that is its own (Anonymous in smaps_rollup: heap,
// stacks, runtime). The rest of rss is the executable's pages, clean and
// shared with every process of the same binary.
type memory struct{ rss, anon float64 }

// memoryOf reads process pid's memory from /proc/<pid>/smaps_rollup.
func memoryOf(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memory{}, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	var m memory
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		key, v, ok := strings.Cut(line, ":")
		if !ok || (key != "Rss" && key != "Anonymous") {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		if err != nil {
			return memory{}, fmt.Errorf("%s of process %d: %q", key, pid, v)
		}
		if key == "Rss" {
			m.rss = float64(kb) / 1024
		} else {
			m.anon = float64(kb) / 1024
		}
		found++
	}
	if found != 2 {
		return memory{}, fmt.Errorf("no Rss and Anonymous for process %d", pid)
	}
	return m, nil
}

// memories collects memory samples of one kind of node.
type memories []memory

// cell renders the RSS and, after it, the private part.
func (ms memories) cell() string {
	var rss, anon floats
	for _, m := range ms {
		rss, anon = append(rss, m.rss), append(anon, m.anon)
	}
	if len(ms) == 0 {
		return "not measured"
	}
	return rss.cell("%.1f", "MB") + "; private " + anon.cell("%.1f", "MB")
}

// externalMemory starts n kvstore nodes as clients of one etcd member (in
// this process) and returns each one's memory once all agree. Each node
// is the only one of its localcluster, so none is given -join (which
// external mode refuses).
func externalMemory(ctx context.Context, cfg config, n int) (memories, error) {
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
	var out memories
	for _, c := range clusters {
		m, err := memoryOf(c.Running()[0].Pid())
		if err != nil {
			return nil, err
		}
		out = append(out, m)
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
