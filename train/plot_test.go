package train

import (
	"slices"
	"testing"
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
