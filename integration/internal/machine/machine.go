// Package machine describes the machine a benchmark or a test run ran on,
// for the published tables.
package machine

import (
	"os"
	"strings"
)

// CPUModel returns the CPU's model name from /proc/cpuinfo, or "unknown
// CPU".
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
