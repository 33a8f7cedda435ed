package train

import (
	"image/color"
	"slices"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// TestEpochTicks: the curves' x axes mark whole epochs only, about ten of them.
func TestEpochTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   []float64
	}{
		{1, 2, []float64{1, 2}},
		{0, 10, []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{1, 12, []float64{2, 4, 6, 8, 10, 12}},
		{0, 30, []float64{0, 5, 10, 15, 20, 25, 30}},
		{1, 150, []float64{20, 40, 60, 80, 100, 120, 140}},
		{3, 3, []float64{3}},
	} {
		var got []float64
		for _, tk := range epochTicks.Ticks(c.lo, c.hi) {
			got = append(got, tk.Value)
			if tk.Label == "" {
				t.Errorf("[%g, %g]: tick %g has no label", c.lo, c.hi, tk.Value)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("ticks of [%g, %g] = %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}

// TestOnePointCurveVisible: a curve of one point (a one-epoch run's h, pseudo-label and
// agreement panels) leaves a mark in the plot, not only its legend entry.
func TestOnePointCurveVisible(t *testing.T) {
	for _, n := range []int{1, 3} {
		p := plot.New()
		if err := addLine(p, "h", 0, []float64{0.5, 0.25, 0.75}[:n], 1); err != nil {
			t.Fatal(err)
		}
		p.Legend = plot.NewLegend() // count the curve's pixels only
		img := vgimg.New(3*vg.Inch, 2*vg.Inch)
		p.Draw(draw.New(img))
		want := palette[0].(color.RGBA)
		drawn := 0
		bounds := img.Image().Bounds()
		for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
			for x := bounds.Min.X; x < bounds.Max.X; x++ {
				if color.RGBAModel.Convert(img.Image().At(x, y)) == want {
					drawn++
				}
			}
		}
		if drawn < 10 {
			t.Errorf("%d points: %d pixels of the curve's colour, want a visible mark", n, drawn)
		}
	}
}
