package main

import (
	"fmt"
	"slices"
	"time"
)

// row is one line of the results table: what was measured, our figures
// over the trials, and the original's figures where it has one.
type row struct {
	what      string
	ours      string
	published string // the original's README
	measured  string // the original, measured here (issue 15)
}

// durations collects one measure over the trials.
type durations []time.Duration

// cell renders the median and the spread: "1.23 s (1.10–1.40, n=3)".
func (ds durations) cell() string {
	if len(ds) == 0 {
		return "not measured"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s) == 1 {
		return fmt.Sprintf("%s (n=1)", secs(med))
	}
	return fmt.Sprintf("%s (%s–%s, n=%d)", secs(med), secs(s[0]), secs(s[len(s)-1]), len(s))
}

func secs(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// floats collects a measure that is not a duration.
type floats []float64

// cell renders the median and the range with the unit after each.
func (fs floats) cell(format, unit string) string {
	if len(fs) == 0 {
		return "not measured"
	}
	s := slices.Clone(fs)
	slices.Sort(s)
	f := func(v float64) string { return fmt.Sprintf(format, v) }
	if len(s) == 1 {
		return f(s[0]) + " " + unit + " (n=1)"
	}
	return fmt.Sprintf("%s %s (%s–%s, n=%d)", f(s[len(s)/2]), unit, f(s[0]), f(s[len(s)-1]), len(s))
}

// printRows prints rows as a Markdown table.
func printRows(rows []row) {
	fmt.Println("| measure | ClusterKit on etcd, this machine: median (min–max, n) | original, published (8 cores) | original, measured here |")
	fmt.Println("|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s |\n", r.what, r.ours, dash(r.published), dash(r.measured))
	}
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
