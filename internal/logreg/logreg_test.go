package logreg

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGradient compares probeLoss's gradient with central differences in
// float64 at a random point, the bias and the L2 term included.
func TestGradient(t *testing.T) {
	const n, dim, classes, lambda = 7, 4, 3, 0.3
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(r.IntN(classes))
	}
	w := make([]float64, classes*(dim+1))
	for i := range w {
		w[i] = r.NormFloat64()
	}
	g := make([]float64, len(w))
	probeLoss(w, g, x, y, dim, classes, lambda)
	scratch := make([]float64, len(w))
	const h = 1e-6
	for i := range w {
		w0 := w[i]
		w[i] = w0 + h
		up := probeLoss(w, scratch, x, y, dim, classes, lambda)
		w[i] = w0 - h
		down := probeLoss(w, scratch, x, y, dim, classes, lambda)
		w[i] = w0
		if fd := (up - down) / (2 * h); math.Abs(fd-g[i]) > 1e-7*math.Max(1, math.Abs(fd)) {
			t.Errorf("d loss / d w[%d]: analytic %.10g, finite difference %.10g", i, g[i], fd)
		}
	}
}

// TestFitSeparates fits three Gaussian blobs whose means lie 6σ apart: the
// probe must classify fresh draws almost perfectly and reach the optimum, where
// the gradient vanishes.
func TestFitSeparates(t *testing.T) {
	const dim, classes, lambda = 2, 3, 1e-3
	means := [classes][dim]float64{{0, 0}, {6, 0}, {0, 6}}
	draw := func(r *rand.Rand, n int) ([]float32, []int32) {
		x, y := make([]float32, n*dim), make([]int32, n)
		for i := range y {
			c := i % classes
			y[i] = int32(c)
			for j := range dim {
				x[i*dim+j] = float32(means[c][j] + r.NormFloat64())
			}
		}
		return x, y
	}
	r := rand.New(rand.NewPCG(3, 4))
	xtr, ytr := draw(r, 300)
	xte, yte := draw(r, 300)
	m := Fit(xtr, ytr, dim, classes, lambda, 200)
	if acc := m.Accuracy(xte, yte); acc < 0.97 {
		t.Fatalf("test accuracy %.3f, want ≥ 0.97 for blobs 6σ apart", acc)
	}
	g := make([]float64, len(m.W))
	probeLoss(m.W, g, xtr, ytr, dim, classes, lambda)
	var norm float64
	for _, v := range g {
		norm += v * v
	}
	if norm = math.Sqrt(norm); norm > 1e-5 {
		t.Fatalf("gradient norm %.3g at the fitted weights, want ≤ 1e-5 (L-BFGS stopped early)", norm)
	}
}
