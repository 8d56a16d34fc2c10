package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// series is one line of a panel: y against N, both on log scales.
type series struct {
	name string
	x, y []float64
}

// panel is one log-log chart.
type panel struct {
	title string
	unit  string
	lines []series
}

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
	{0xff, 0x7f, 0x0e, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff},
}

// writePlot draws the medians of sizes, time and bytes against N, one
// line per metric and partition count, as a PNG file.
func writePlot(path string, sizes []summary) error {
	byP := map[int][]summary{}
	var ps []int
	for _, s := range sizes {
		if _, ok := byP[s.Partitions]; !ok {
			ps = append(ps, s.Partitions)
		}
		byP[s.Partitions] = append(byP[s.Partitions], s)
	}
	times := panel{title: "time (s, median) against nodes N", unit: "s"}
	bytes := panel{title: "etcd bytes per change (MB, median) against nodes N", unit: "MB"}
	for _, p := range ps {
		line := func(name string, f func(s summary) float64) series {
			l := series{name: fmt.Sprintf("%s, P=%d", name, p)}
			for _, s := range byP[p] {
				l.x, l.y = append(l.x, float64(s.Nodes)), append(l.y, f(s))
			}
			return l
		}
		times.lines = append(times.lines,
			line("join -> all agree", func(s summary) float64 { return s.Join.Med }),
			line("crash -> repaired", func(s summary) float64 { return s.Crash.Med }),
			line("formation", func(s summary) float64 { return s.Formation.Med }))
		bytes.lines = append(bytes.lines,
			line("join: sent to clients", func(s summary) float64 { return s.JoinOut.Med / mb }),
			line("crash: sent to clients", func(s summary) float64 { return s.CrashOut.Med / mb }),
			line("join: put", func(s summary) float64 { return s.JoinPut.Med / mb }))
	}
	img := image.NewRGBA(image.Rect(0, 0, 1200, 520))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	times.draw(img, image.Rect(0, 0, 600, 520))
	bytes.draw(img, image.Rect(600, 0, 1200, 520))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("plot: %w", err)
	}
	return f.Close()
}

// decades returns the powers of ten that enclose vs (positive values).
func decades(vs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if v > 0 {
			lo, hi = min(lo, math.Floor(math.Log10(v))), max(hi, math.Ceil(math.Log10(v)))
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 1
	}
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

func (p panel) draw(img *image.RGBA, r image.Rectangle) {
	var xs, ys []float64
	for _, l := range p.lines {
		xs, ys = append(xs, l.x...), append(ys, l.y...)
	}
	xlo, xhi := decades(xs)
	ylo, yhi := decades(ys)
	plot := image.Rect(r.Min.X+70, r.Min.Y+40, r.Max.X-20, r.Max.Y-150)
	at := func(x, y float64) image.Point {
		fx := (math.Log10(x) - xlo) / (xhi - xlo)
		fy := (math.Log10(y) - ylo) / (yhi - ylo)
		return image.Pt(plot.Min.X+int(fx*float64(plot.Dx())), plot.Max.Y-int(fy*float64(plot.Dy())))
	}
	grey, black := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}, color.RGBA{0, 0, 0, 0xff}
	text(img, r.Min.X+70, r.Min.Y+20, p.title, black)
	for e := ylo; e <= yhi; e++ {
		y := at(math.Pow(10, xlo), math.Pow(10, e)).Y
		line(img, image.Pt(plot.Min.X, y), image.Pt(plot.Max.X, y), grey, 1)
		text(img, r.Min.X+5, y+4, fmt.Sprintf("%g %s", math.Pow(10, e), p.unit), black)
	}
	for e := xlo; e <= xhi; e++ {
		x := at(math.Pow(10, e), math.Pow(10, ylo)).X
		line(img, image.Pt(x, plot.Min.Y), image.Pt(x, plot.Max.Y), grey, 1)
		text(img, x-10, plot.Max.Y+18, fmt.Sprintf("%g", math.Pow(10, e)), black)
	}
	text(img, plot.Min.X+plot.Dx()/2-25, plot.Max.Y+34, "nodes N", black)
	line(img, image.Pt(plot.Min.X, plot.Max.Y), image.Pt(plot.Max.X, plot.Max.Y), black, 1)
	line(img, image.Pt(plot.Min.X, plot.Min.Y), image.Pt(plot.Min.X, plot.Max.Y), black, 1)
	for i, l := range p.lines {
		c := palette[i%len(palette)]
		var prev *image.Point
		for j := range l.x {
			if l.y[j] <= 0 {
				prev = nil
				continue
			}
			pt := at(l.x[j], l.y[j])
			draw.Draw(img, image.Rect(pt.X-3, pt.Y-3, pt.X+4, pt.Y+4), image.NewUniform(c), image.Point{}, draw.Src)
			if prev != nil {
				line(img, *prev, pt, c, 2)
			}
			prev = &pt
		}
		ly := plot.Max.Y + 56 + 16*i
		line(img, image.Pt(plot.Min.X, ly-4), image.Pt(plot.Min.X+30, ly-4), c, 2)
		text(img, plot.Min.X+40, ly, l.name, black)
	}
}

// line draws a segment w pixels thick (Bresenham, thickened by squares).
func line(img *image.RGBA, a, b image.Point, c color.RGBA, w int) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := sign(b.X-a.X), sign(b.Y-a.Y)
	e := dx + dy
	for x, y := a.X, a.Y; ; {
		for i := range w {
			for j := range w {
				img.SetRGBA(x+i, y+j, c)
			}
		}
		if x == b.X && y == b.Y {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x += sx
		}
		if e2 <= dx {
			e += dx
			y += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
