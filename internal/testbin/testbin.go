// Package testbin builds a Go command for tests that run it as child
// processes (node processes under faults, the demo, the store).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build builds the Go package pkg (an import path, or a directory relative
// to the working directory) with the extra go build flags into a new temp
// directory. It returns the binary's path and the directory, which the
// caller removes when its tests are done.
func Build(pkg, name string, flags ...string) (bin, dir string, err error) {
	dir, err = os.MkdirTemp("", name+"-bin-")
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, name)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := append(append([]string{"build"}, flags...), "-o", bin, pkg)
	if out, err := exec.Command(goTool, args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("testbin: go build %s: %v\n%s", pkg, err, out)
	}
	return bin, dir, nil
}
