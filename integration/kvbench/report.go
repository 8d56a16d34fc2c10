package main

import (
	"fmt"
	"runtime"
	"time"
)

// result is one mode's measurement.
type result struct {
	name     string
	ops      int
	elapsed  time.Duration
	p50, p99 time.Duration
	errors   int
	lastErr  error
}

func (r result) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func (r result) String() string {
	s := fmt.Sprintf("%.0f ops/s, p50 %v, p99 %v, %d errors", r.rate(), r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.errors)
	if r.lastErr != nil {
		s += fmt.Sprintf(" (last: %v)", r.lastErr)
	}
	return s
}

// original are the figures the original ClusterKit published (10 nodes ×
// 64 partitions × RF 3, 8 cores).
var original = map[string]struct {
	rate     float64
	p50, p99 string
}{
	"sync-write":     {3750, "8 ms", "25 ms"},
	"async-write":    {12500, "2 ms", "8 ms"},
	"local-read":     {10862, "1 ms", "3 ms"},
	"forwarded-read": {8200, "3 ms", "12 ms"},
}

const originalCores = 8

func printTable(rs []result) {
	cores := float64(runtime.NumCPU())
	fmt.Printf("| mode | ops/s | p50 | p99 | errors | ops/s per core | original ops/s (8 cores) | original p50 / p99 | original per core |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		o := original[r.name]
		fmt.Printf("| %s | %.0f | %s | %s | %d | %.0f | %.0f | %s / %s | %.0f |\n", r.name, r.rate(), ms(r.p50), ms(r.p99), r.errors,
			r.rate()/cores, o.rate, o.p50, o.p99, o.rate/originalCores)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
