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
type stat struct{ Med, Min, Max float64 }

func statOf(xs []float64) stat {
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Med: med, Min: s[0], Max: s[len(s)-1]}
}

// format prints the median, and the range when there is one, with unit u
// after scaling by div.
func (s stat) format(div float64, prec int, u string) string {
	f := func(v float64) string { return fmt.Sprintf("%.*f", prec, v/div) }
	if f(s.Min) == f(s.Max) {
		return f(s.Med) + u
	}
	return fmt.Sprintf("%s%s (%s–%s)", f(s.Med), u, f(s.Min), f(s.Max))
}

// summary is one size over its trials.
type summary struct {
	Nodes, Partitions, Trials int
	// LeaseTTL is the nodes' lease TTL in seconds (0 in files saved
	// before it was recorded: those runs used 3 s).
	LeaseTTL                                    float64 `json:",omitempty"`
	Formation, Join, Crash, Expired             stat    // seconds
	JoinWrites, JoinMapWrites, JoinPut, JoinOut stat    // JoinPut, JoinOut: bytes
	CrashWrites, CrashMapWrites, CrashOut       stat
	MaxWrite, HeapPerNode, RSSPerNode           stat // bytes
	// Bursts of BurstK starts, then halts: time, map versions, rebalances.
	BurstK                                               int
	BurstStart, BurstStartVersions, BurstStartRebalances stat
	BurstHalt, BurstHaltVersions, BurstHaltRebalances    stat
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
		Nodes: rs[0].nodes, Partitions: rs[0].partitions, Trials: len(rs), LeaseTTL: rs[0].ttl.Seconds(),
		Formation:            get(func(r result) float64 { return r.formation.Seconds() }),
		Join:                 get(func(r result) float64 { return r.join.took.Seconds() }),
		Crash:                get(func(r result) float64 { return r.crash.took.Seconds() }),
		Expired:              get(func(r result) float64 { return r.crash.expired.Seconds() }),
		JoinWrites:           get(func(r result) float64 { return float64(r.join.writes) }),
		JoinMapWrites:        get(func(r result) float64 { return float64(r.join.mapWrites) }),
		JoinPut:              get(func(r result) float64 { return r.join.etcd.putBytes }),
		JoinOut:              get(func(r result) float64 { return r.join.etcd.sent }),
		CrashWrites:          get(func(r result) float64 { return float64(r.crash.writes) }),
		CrashMapWrites:       get(func(r result) float64 { return float64(r.crash.mapWrites) }),
		CrashOut:             get(func(r result) float64 { return r.crash.etcd.sent }),
		MaxWrite:             get(func(r result) float64 { return float64(r.maxWrite) }),
		HeapPerNode:          get(func(r result) float64 { return r.heapPerNode }),
		RSSPerNode:           get(func(r result) float64 { return r.rssPerNode }),
		BurstK:               rs[0].burstStart.k,
		BurstStart:           get(func(r result) float64 { return r.burstStart.took.Seconds() }),
		BurstHalt:            get(func(r result) float64 { return r.burstHalt.took.Seconds() }),
		BurstStartVersions:   get(func(r result) float64 { return float64(r.burstStart.versions) }),
		BurstHaltVersions:    get(func(r result) float64 { return float64(r.burstHalt.versions) }),
		BurstStartRebalances: get(func(r result) float64 { return float64(r.burstStart.rebalances) }),
		BurstHaltRebalances:  get(func(r result) float64 { return float64(r.burstHalt.rebalances) }),
	}
}

const mb = 1e6

// printTable writes the summaries as a Markdown table: medians, with the
// range over the trials in parentheses.
func printTable(w io.Writer, sizes []summary) {
	fmt.Fprintln(w, "| N × P | trials | formation | join → all agree | join: writes (map) | join: put | join: sent to clients | crash → repaired | of which lease expiry seen | crash: writes (map) | crash: sent to clients | largest write | heap / node | RSS / node |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range sizes {
		fmt.Fprintf(w, "| %d × %d%s | %d | %s | %s | %s (%s) | %s | %s | %s | %s | %s (%s) | %s | %s | %s | %s |\n",
			s.Nodes, s.Partitions, s.ttlNote(), s.Trials,
			s.Formation.format(1, 1, " s"), s.Join.format(1, 2, " s"),
			s.JoinWrites.format(1, 0, ""), s.JoinMapWrites.format(1, 0, ""),
			s.JoinPut.format(mb, 2, " MB"), s.JoinOut.format(mb, 1, " MB"),
			s.Crash.format(1, 2, " s"), s.Expired.format(1, 2, " s"),
			s.CrashWrites.format(1, 0, ""), s.CrashMapWrites.format(1, 0, ""),
			s.CrashOut.format(mb, 1, " MB"),
			s.MaxWrite.format(1e3, 0, " KB"), s.HeapPerNode.format(mb, 2, " MB"), s.RSSPerNode.format(mb, 1, " MB"))
	}
	printBursts(w, sizes)
}

// ttlNote names a lease TTL other than the default 3 s (a light mode).
func (s summary) ttlNote() string {
	if s.LeaseTTL == 0 || s.LeaseTTL == 3 {
		return ""
	}
	return fmt.Sprintf(" (TTL %g s)", s.LeaseTTL)
}

// printBursts writes the bursts' table (sizes that ran none are left out).
func printBursts(w io.Writer, sizes []summary) {
	fmt.Fprintln(w, "\n| N × P | burst | starts → all agree | starts: map versions, rebalances | halts → all agree | halts: map versions, rebalances |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, s := range sizes {
		if s.BurstK == 0 {
			continue
		}
		fmt.Fprintf(w, "| %d × %d | %d | %s | %s, %s | %s | %s, %s |\n", s.Nodes, s.Partitions, s.BurstK,
			s.BurstStart.format(1, 2, " s"), s.BurstStartVersions.format(1, 0, ""), s.BurstStartRebalances.format(1, 0, ""),
			s.BurstHalt.format(1, 2, " s"), s.BurstHaltVersions.format(1, 0, ""), s.BurstHaltRebalances.format(1, 0, ""))
	}
}

// line is one trial in one line, for progress.
func (r result) line() string {
	return fmt.Sprintf("formation %.1fs, join %.3fs (%d writes, %d of the map, %.2f MB put, %.1f MB sent), crash %.3fs (lease expiry seen at %.3fs, %d writes, %d of the map, %.1f MB sent), largest write %d B, heap/node %.2f MB, RSS/node %.1f MB, Start retries %d; %d at once: starts %.3fs (%d map versions, %d rebalances), halts %.3fs (%d map versions, %d rebalances)",
		r.formation.Seconds(), r.join.took.Seconds(), r.join.writes, r.join.mapWrites, r.join.etcd.putBytes/mb, r.join.etcd.sent/mb,
		r.crash.took.Seconds(), r.crash.expired.Seconds(), r.crash.writes, r.crash.mapWrites, r.crash.etcd.sent/mb, r.maxWrite, r.heapPerNode/mb, r.rssPerNode/mb, r.startRetries,
		r.burstStart.k, r.burstStart.took.Seconds(), r.burstStart.versions, r.burstStart.rebalances,
		r.burstHalt.took.Seconds(), r.burstHalt.versions, r.burstHalt.rebalances)
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
