package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// runTool runs one of the module's other benchmark commands as it is (go
// run from the module root), under a heading: its stdout (its tables) goes
// to ours, its progress to our stderr.
func runTool(ctx context.Context, heading, pkg string, args ...string) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("\n## %s\n\n", heading)
	fmt.Printf("`go run %s %s`\n\n", pkg, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", pkg}, args...)...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go run %s: %w", pkg, err)
	}
	return nil
}

// moduleRoot returns the directory of this module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run bench from inside the clusterkit module (go env GOMOD is %q)", mod)
	}
	return strings.TrimSuffix(mod, "/go.mod"), nil
}
