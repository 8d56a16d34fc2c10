package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/clusterkit-go/clusterkit/internal/testbin"
)

// demoBinary is this command, built once by TestMain without the race
// detector (its nodes are copies of it).
var demoBinary string

func TestMain(m *testing.M) {
	bin, dir, err := testbin.Build(".", "demo")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	demoBinary = bin
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// demoCommand runs the demo with its own TMPDIR, so that the test can
// check it left nothing there.
func demoCommand(ctx context.Context, t *testing.T, bin, tmp string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	return cmd
}

// checkNothingLeft fails if tmp is not empty or a process of bin runs.
func checkNothingLeft(t *testing.T, bin, tmp string) {
	t.Helper()
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("the demo left %d entries in its temp dir, e.g. %s", len(entries), entries[0].Name())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := processesOf(bin)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes of the demo still run: %v", pids)
			for _, pid := range pids {
				if n, err := strconv.Atoi(pid); err == nil {
					syscall.Kill(n, syscall.SIGKILL)
				}
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesOf lists the processes whose executable is bin (Linux /proc).
func processesOf(bin string) []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		exe, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe"))
		if err == nil && exe == bin {
			out = append(out, d.Name())
		}
	}
	return out
}

func TestDemoEndToEnd(t *testing.T) {
	bin := demoBinary
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := demoCommand(ctx, t, bin, tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err := cmd.Run()
	t.Logf("demo ran %v:\n%s", time.Since(began).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	for _, want := range []string{"3 nodes formed one cluster", "node-4 serves its share", "noticed node-2 left (lease_expired)",
		"node-2 rejoined", "verdict: OK"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if n := strings.Count(out.String(), "partition-"); n > 0 {
		t.Errorf("the output names single partitions %d times; it should only count them", n)
	}
	checkNothingLeft(t, bin, tmp)
}

func TestDemoInterruptedCleansUp(t *testing.T) {
	bin := demoBinary
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := demoCommand(ctx, t, bin, tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "node-4 starts") {
			break
		}
	}
	if len(processesOf(bin)) < 4 {
		t.Errorf("expected the demo and its nodes to run, found %d processes", len(processesOf(bin)))
	}
	cmd.Process.Signal(os.Interrupt)
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("interrupted demo: exit code %d (%v), want 130; stderr: %s", code, err, stderr.String())
	}
	checkNothingLeft(t, bin, tmp)
}
