package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clusterkit-go/clusterkit/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// BenchmarkScale10x1024 is one trial of the scale benchmark per iteration
// at 10 nodes × 1,024 partitions (LeaseTTL 3 s, so about 10 s each); the
// command (go run ./integration/scalebench) runs the larger sizes.
func BenchmarkScale10x1024(b *testing.B) {
	c := config{ttl: 3 * time.Second, batch: 10, stepTimeout: 2 * time.Minute}
	var rs []result
	for b.Loop() {
		r, err := runTrial(c, 10, 1024)
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, r)
	}
	s := summarize(rs)
	b.ReportMetric(s.Formation.Med*1e3, "formation-ms")
	b.ReportMetric(s.Join.Med*1e3, "join-agree-ms")
	b.ReportMetric(s.Crash.Med*1e3, "crash-repaired-ms")
	b.ReportMetric(s.JoinMapWrites.Med, "join-map-writes")
	b.ReportMetric(s.JoinOut.Med/mb, "join-sent-MB")
	b.ReportMetric(s.CrashOut.Med/mb, "crash-sent-MB")
	b.ReportMetric(s.MaxWrite.Med/1e3, "max-write-KB")
	b.ReportMetric(s.HeapPerNode.Med/mb, "heap-MB/node")
}

// TestPlot draws a plot of two sizes and checks that it is a PNG of the
// expected size with pixels of every series' colour.
func TestPlot(t *testing.T) {
	r := func(n int, join, crash float64, sent float64) summary {
		return summary{Nodes: n, Partitions: 1024, Join: stat{Med: join}, Crash: stat{Med: crash},
			Formation: stat{Med: 10 * join}, JoinOut: stat{Med: sent}, CrashOut: stat{Med: sent}, JoinPut: stat{Med: sent / 10}}
	}
	path := filepath.Join(t.TempDir(), "scale.png")
	if err := writePlot(path, []summary{r(10, 0.07, 3.4, 1.4e6), r(100, 0.5, 4.5, 14e6)}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got.X != 1200 || got.Y != 520 {
		t.Fatalf("plot is %v, want 1200×520", got)
	}
	seen := map[[3]uint32]bool{}
	for y := range 520 {
		for x := range 1200 {
			r, g, b, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	for i, c := range palette[:3] {
		if !seen[[3]uint32{uint32(c.R), uint32(c.G), uint32(c.B)}] {
			t.Errorf("no pixel of series %d's colour %v", i, c)
		}
	}
}

// TestStat checks the median and range of odd and even counts.
func TestStat(t *testing.T) {
	if s := statOf([]float64{3, 1, 2}); s != (stat{Med: 2, Min: 1, Max: 3}) {
		t.Errorf("statOf(3,1,2) = %+v", s)
	}
	if s := statOf([]float64{4, 1, 2, 3}); s != (stat{Med: 2.5, Min: 1, Max: 4}) {
		t.Errorf("statOf(4,1,2,3) = %+v", s)
	}
	if got := (stat{Med: 2e6, Min: 1e6, Max: 3e6}).format(mb, 1, " MB"); got != "2.0 MB (1.0–3.0)" {
		t.Errorf("format = %q", got)
	}
}
