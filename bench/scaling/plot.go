package main

import (
	"bytes"
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	strongColor = color.RGBA{31, 119, 180, 255}
	weakColor   = color.RGBA{255, 127, 14, 255}
)

// drawPlot draws two panels side by side: seconds per update and rank 0's share of it
// inside collectives, against the MPI world size W, one line per scaling mode, with the
// local transport (one process, the views as goroutines) as a lone point at W = views.
func drawPlot(path string, runs []run) error {
	tp, cp := plot.New(), plot.New()
	tp.Title.Text, cp.Title.Text = "time per update", "communication share (rank 0)"
	tp.Y.Label.Text, cp.Y.Label.Text = "s/update", "comm / update"
	for _, p := range []*plot.Plot{tp, cp} {
		p.X.Label.Text = "MPI ranks W (local transport: 1 process, drawn at W = views)"
	}
	// Time rises with W here, so its legend goes bottom right; the share starts near 0.
	cp.Legend.Top, cp.Legend.Left = true, true
	tp.Y.Min, cp.Y.Min, cp.Y.Max = 0, 0, 1
	for _, m := range []struct {
		mode string
		c    color.Color
	}{{"strong", strongColor}, {"weak", weakColor}} {
		var t, s, lt, ls plotter.XYs
		for _, r := range runs {
			if r.Mode != m.mode {
				continue
			}
			if r.Ranks == 0 {
				lt = append(lt, plotter.XY{X: float64(r.Views), Y: r.SecondsPerUpdate})
				ls = append(ls, plotter.XY{X: float64(r.Views), Y: r.CommShare()})
				continue
			}
			t = append(t, plotter.XY{X: float64(r.Ranks), Y: r.SecondsPerUpdate})
			s = append(s, plotter.XY{X: float64(r.Ranks), Y: r.CommShare()})
		}
		for _, panel := range []struct {
			p          *plot.Plot
			mpi, local plotter.XYs
		}{{tp, t, lt}, {cp, s, ls}} {
			if err := addSeries(panel.p, m.mode, m.c, panel.mpi, panel.local); err != nil {
				return err
			}
		}
	}
	const w, h = 5 * vg.Inch, 3.5 * vg.Inch
	img := vgimg.New(2*w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: 4 * vg.Millimeter}
	tp.Draw(tiles.At(dc, 0, 0))
	cp.Draw(tiles.At(dc, 1, 0))
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&b); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

func addSeries(p *plot.Plot, mode string, c color.Color, mpi, local plotter.XYs) error {
	if len(mpi) > 0 {
		l, s, err := plotter.NewLinePoints(mpi)
		if err != nil {
			return fmt.Errorf("plot %s: %w", mode, err)
		}
		l.Color, s.Color = c, c
		l.Width = vg.Points(1.5)
		p.Add(l, s)
		p.Legend.Add(mode+", mpirun", l, s)
	}
	if len(local) > 0 {
		s, err := plotter.NewScatter(local)
		if err != nil {
			return fmt.Errorf("plot %s local: %w", mode, err)
		}
		s.Color = c
		s.Shape = draw.BoxGlyph{}
		s.Radius = vg.Points(4)
		p.Add(s)
		p.Legend.Add(mode+", local", s)
	}
	return nil
}
