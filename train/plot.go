package train

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"mct/internal/atomicfile"
)

var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
}

// plotCurves draws the learning curves of a run into one PNG: validation accuracy per
// view over the warmup epochs, and for MCT the validation accuracy, the meta-feedback h
// and the pseudo-label accuracy per view, the views' agreement, and how many validation
// examples both views of a pair get wrong, over the MCT epochs.
func plotCurves(path string, s *Summary, warmup map[string][]float64, epochs []mctEpoch) error {
	var panels []*plot.Plot
	p := plot.New()
	p.Title.Text = "warmup (supervised)"
	p.X.Label.Text, p.Y.Label.Text = "epoch", "val accuracy"
	for i, v := range s.Views {
		if err := addLine(p, v, i, warmup[v], 1); err != nil {
			return err
		}
	}
	panels = append(panels, p)
	if len(epochs) > 0 {
		acc, h, pl := plot.New(), plot.New(), plot.New()
		phase := strings.ToUpper(s.Algo) // MCT, or MPL: the same step
		acc.Title.Text, h.Title.Text, pl.Title.Text = phase+": val accuracy", phase+": meta-feedback h", phase+": pseudo-labels right, "+s.Config.probeKind()+" agreeing"
		for _, q := range []*plot.Plot{acc, h, pl} {
			q.X.Label.Text = "epoch"
		}
		// Validation accuracy starts at epoch 0 with the warmed-up probes, the baseline.
		acc.X.Label.Text = "epoch (0: after warmup)"
		for i, v := range s.Views {
			var a, hv, pa []float64
			if s.WarmupValAccuracy != nil {
				a = append(a, s.WarmupValAccuracy.PerView[v])
			}
			for _, e := range epochs {
				a, hv = append(a, e.Val.PerView[v]), append(hv, e.H[i])
				if len(e.PseudoAcc) > i { // nil when no unlabeled row has a known label
					pa = append(pa, e.PseudoAcc[i])
				}
			}
			if err := firstErr(addLine(acc, v, i, a, float64(1-len(a)+len(epochs))), addLine(h, v, i, hv, 1), addLine(pl, v, i, pa, 1)); err != nil {
				return err
			}
		}
		var ens []float64
		if s.WarmupValAccuracy != nil {
			ens = append(ens, s.WarmupValAccuracy.Ensemble)
		}
		for _, e := range epochs {
			ens = append(ens, e.Val.Ensemble)
		}
		agree := make([]float64, len(epochs))
		for k, e := range epochs {
			agree[k] = e.Agreement
		}
		// Agreement rising while accuracy stalls is how the views converge (README, Results).
		if err := firstErr(addLine(acc, "ensemble", len(s.Views), ens, float64(1-len(ens)+len(epochs))),
			addLine(pl, "agreement", len(s.Views), agree, 1)); err != nil {
			return err
		}
		se, err := sharedErrorsPanel(s, epochs)
		if err != nil {
			return err
		}
		panels = append(panels, acc, h, pl, se)
	}
	const w, hgt = 5 * vg.Inch, 3.5 * vg.Inch
	cols := min(len(panels), 3)
	rows := (len(panels) + cols - 1) / cols
	img := vgimg.New(w*vg.Length(cols), hgt*vg.Length(rows))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4}
	for i, q := range panels {
		q.Legend.Top = true
		q.X.Tick.Marker = epochTicks
		q.Y.Max += 0.35 * (q.Y.Max - q.Y.Min) // headroom, so the legend covers no line
		q.Draw(tiles.At(dc, i%cols, i/cols))
	}
	return savePNG(path, img)
}

// sharedErrorsPanel plots, for every pair of views, the validation examples both get
// wrong and those both give the same wrong class, from the warmed-up probes (epoch 0) on:
// MCT cannot fix them, and it grows them as the views learn each other's mistakes.
func sharedErrorsPanel(s *Summary, epochs []mctEpoch) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = strings.ToUpper(s.Algo) + ": val examples both " + s.Config.probeKind() + " get wrong"
	p.X.Label.Text = "epoch (0: after warmup)"
	recs := make([]Accuracies, 0, len(epochs)+1)
	if s.WarmupValAccuracy != nil {
		recs = append(recs, *s.WarmupValAccuracy)
	}
	for _, e := range epochs {
		recs = append(recs, e.Val)
	}
	for k, pair := range epochs[len(epochs)-1].Val.SharedErrors {
		var both, same []float64
		for _, a := range recs {
			if k < len(a.SharedErrors) {
				both, same = append(both, a.SharedErrors[k].BothWrong), append(same, a.SharedErrors[k].SameWrong)
			}
		}
		name, x0 := pair.A+"+"+pair.B, float64(1-len(both)+len(epochs))
		if err := firstErr(addLine(p, name+" both wrong", 2*k, both, x0), addLine(p, name+" same wrong class", 2*k+1, same, x0)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func addLine(p *plot.Plot, name string, i int, ys []float64, x0 float64) error {
	if len(ys) == 0 {
		return nil
	}
	pts := make(plotter.XYs, len(ys))
	for k, y := range ys {
		pts[k] = plotter.XY{X: x0 + float64(k), Y: y}
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("plot %s: %w", name, err)
	}
	l.Color = palette[i%len(palette)]
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	if len(pts) <= markedPoints {
		// A line through one point draws nothing (a one-epoch run): mark each point.
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		s.GlyphStyle = draw.GlyphStyle{Color: l.Color, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
		p.Add(s)
	}
	return nil
}

// markedPoints is the longest curve whose points are marked; longer ones are lines only.
const markedPoints = 12

// epochTicks marks whole epochs, every 1, 2, 5, 10, 20, … so that about ten are
// labelled (every x axis here counts epochs; the default ticker labels 1.5 on a short run).
var epochTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	step := 1.0
	for k := 0; (hi-lo)/step > 10; k++ {
		step *= []float64{2, 2.5, 2}[k%3] // 1, 2, 5, 10, 20, 50, …
	}
	var ticks []plot.Tick
	for e := math.Ceil(lo/step) * step; e <= hi; e += step {
		ticks = append(ticks, plot.Tick{Value: e, Label: strconv.Itoa(int(e))})
	}
	return ticks
})

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// savePNG encodes the canvas and writes it atomically.
func savePNG(path string, img *vgimg.Canvas) error {
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&b); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b.Bytes())
}
