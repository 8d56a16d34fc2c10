package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// stat is the median and spread of one metric over the trials.
type stat struct{ med, min, max float64 }

func statOf(xs []float64) stat {
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med: med, min: s[0], max: s[len(s)-1]}
}

// format prints the median, and the range when there is one, with unit u
// after scaling by div.
func (s stat) format(div float64, prec int, u string) string {
	f := func(v float64) string { return fmt.Sprintf("%.*f", prec, v/div) }
	if s.min == s.max {
		return f(s.med) + u
	}
	return fmt.Sprintf("%s%s (%s–%s)", f(s.med), u, f(s.min), f(s.max))
}

// summary is one size over its trials.
type summary struct {
	nodes, partitions, trials                   int
	formation, join, crash                      stat // seconds
	joinWrites, joinMapWrites, joinPut, joinOut stat // joinPut, joinOut: bytes
	crashWrites, crashMapWrites, crashOut       stat
	maxWrite, heapPerNode                       stat // bytes
}

func summarize(rs []result) summary {
	get := func(f func(r result) float64) stat {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return statOf(xs)
	}
	return summary{
		nodes: rs[0].nodes, partitions: rs[0].partitions, trials: len(rs),
		formation:      get(func(r result) float64 { return r.formation.Seconds() }),
		join:           get(func(r result) float64 { return r.join.took.Seconds() }),
		crash:          get(func(r result) float64 { return r.crash.took.Seconds() }),
		joinWrites:     get(func(r result) float64 { return float64(r.join.writes) }),
		joinMapWrites:  get(func(r result) float64 { return float64(r.join.mapWrites) }),
		joinPut:        get(func(r result) float64 { return r.join.etcd.putBytes }),
		joinOut:        get(func(r result) float64 { return r.join.etcd.sent }),
		crashWrites:    get(func(r result) float64 { return float64(r.crash.writes) }),
		crashMapWrites: get(func(r result) float64 { return float64(r.crash.mapWrites) }),
		crashOut:       get(func(r result) float64 { return r.crash.etcd.sent }),
		maxWrite:       get(func(r result) float64 { return float64(r.maxWrite) }),
		heapPerNode:    get(func(r result) float64 { return r.heapPerNode }),
	}
}

const mb = 1e6

// printTable writes the summaries as a Markdown table: medians, with the
// range over the trials in parentheses.
func printTable(w io.Writer, sizes []summary) {
	fmt.Fprintln(w, "| N × P | trials | formation | join → all agree | join: writes (map) | join: put | join: sent to clients | crash → repaired | crash: writes (map) | crash: sent to clients | largest write | heap / node |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range sizes {
		fmt.Fprintf(w, "| %d × %d | %d | %s | %s | %s (%s) | %s | %s | %s | %s (%s) | %s | %s | %s |\n",
			s.nodes, s.partitions, s.trials,
			s.formation.format(1, 1, " s"), s.join.format(1, 2, " s"),
			s.joinWrites.format(1, 0, ""), s.joinMapWrites.format(1, 0, ""),
			s.joinPut.format(mb, 2, " MB"), s.joinOut.format(mb, 1, " MB"),
			s.crash.format(1, 2, " s"),
			s.crashWrites.format(1, 0, ""), s.crashMapWrites.format(1, 0, ""),
			s.crashOut.format(mb, 1, " MB"),
			s.maxWrite.format(1e3, 0, " KB"), s.heapPerNode.format(mb, 2, " MB"))
	}
}

// line is one trial in one line, for progress.
func (r result) line() string {
	return fmt.Sprintf("formation %.1fs, join %.3fs (%d writes, %d of the map, %.2f MB put, %.1f MB sent), crash %.3fs (%d writes, %d of the map, %.1f MB sent), largest write %d B, heap/node %.2f MB",
		r.formation.Seconds(), r.join.took.Seconds(), r.join.writes, r.join.mapWrites, r.join.etcd.putBytes/mb, r.join.etcd.sent/mb,
		r.crash.took.Seconds(), r.crash.writes, r.crash.mapWrites, r.crash.etcd.sent/mb, r.maxWrite, r.heapPerNode/mb)
}

// printTimeline writes each revision of a step with its time after the
// step's start, what it touched and its size.
func printTimeline(w io.Writer, name string, st step) {
	fmt.Fprintf(w, "  %s: %v, %d writes\n", name, st.took.Round(time.Millisecond), st.writes)
	for _, wr := range st.log {
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(wr.kinds)) {
			kinds = append(kinds, fmt.Sprintf("%s×%d", k, wr.kinds[k]))
		}
		fmt.Fprintf(w, "    %+8.3fs rev %d %s %d B\n", wr.at.Sub(st.start).Seconds(), wr.rev, strings.Join(kinds, " "), wr.bytes)
	}
}
