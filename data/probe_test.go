package data

import (
	"math"
	"os"
	"strings"
	"testing"
)

// logisticProbe trains multinomial logistic regression (bias included, L2
// penalty lambda/2·‖W‖² on the mean cross-entropy, iters of L-BFGS) on xtr and returns
// the accuracy on xte. It is the yardstick of DESIGN.md's view table: a view is
// good when a linear model on few labels already separates the classes.
func logisticProbe(xtr []float32, ytr []int32, xte []float32, yte []int32, dim, classes int, lambda float64, iters int) float64 {
	stride := dim + 1
	w := lbfgs(make([]float64, classes*stride), iters, func(w, g []float64) float64 {
		return probeLoss(w, g, xtr, ytr, dim, classes, lambda)
	})
	correct := 0
	for i, y := range yte {
		best, arg := math.Inf(-1), 0
		for c := 0; c < classes; c++ {
			z := w[c*stride+dim]
			for j, x := range xte[i*dim : (i+1)*dim] {
				z += w[c*stride+j] * float64(x)
			}
			if z > best {
				best, arg = z, c
			}
		}
		if int32(arg) == y {
			correct++
		}
	}
	return float64(correct) / float64(len(yte))
}

// probeLoss returns the penalised mean cross-entropy and, if g is not nil, its gradient.
func probeLoss(w, g []float64, x []float32, y []int32, dim, classes int, lambda float64) float64 {
	stride := dim + 1
	if g != nil {
		clear(g)
	}
	z := make([]float64, classes)
	loss := 0.0
	n := float64(len(y))
	for i, yi := range y {
		row := x[i*dim : (i+1)*dim]
		zmax := math.Inf(-1)
		for c := range z {
			s := w[c*stride+dim]
			wc := w[c*stride : c*stride+dim]
			for j, v := range row {
				s += wc[j] * float64(v)
			}
			z[c] = s
			zmax = math.Max(zmax, s)
		}
		var sum float64
		for c := range z {
			z[c] = math.Exp(z[c] - zmax)
			sum += z[c]
		}
		loss -= math.Log(z[yi]/sum) / n
		if g != nil {
			for c := range z {
				d := z[c] / sum
				if int32(c) == yi {
					d--
				}
				d /= n
				gc := g[c*stride : c*stride+dim]
				for j, v := range row {
					gc[j] += d * float64(v)
				}
				g[c*stride+dim] += d
			}
		}
	}
	for c := 0; c < classes; c++ {
		for j := 0; j < dim; j++ {
			v := w[c*stride+j]
			loss += lambda / 2 * v * v
			if g != nil {
				g[c*stride+j] += lambda * v
			}
		}
	}
	return loss
}

// TestProbeSmall checks every built-in family separates real Fashion-MNIST
// classes: 1000 train images (100 per class would be the full probe; here all
// 1000 are labeled) and 1000 test images, features standardised on those 1000.
// 60 L-BFGS iterations reach the accuracy of 300 to within 0.005 here.
// Thresholds sit well below the full-data numbers so noise cannot fail them;
// a broken feature (constant, scrambled, misaligned with labels) lands near 0.1.
func TestProbeSmall(t *testing.T) {
	src, err := locateFashionMNIST()
	if err != nil {
		t.Skip(err)
	}
	raw, err := loadRaw(builtins["fashion-mnist"], src)
	if err != nil {
		t.Fatal(err)
	}
	const ntr, nte = 1000, 1000
	sub := func(im Images, n int) Images {
		im.N, im.Pix = n, im.Pix[:n*im.H*im.W]
		return im
	}
	for _, tc := range []struct {
		spec string
		min  float64
	}{
		{"pixels", 0.70}, {"hog", 0.70}, {"gabor", 0.70}, {"randconv", 0.70}, {"lbp", 0.60},
	} {
		v, err := buildView(tc.spec, sub(raw.train, ntr), sub(raw.test, nte), nil)
		if err != nil {
			t.Fatal(err)
		}
		acc := logisticProbe(v.Train, raw.trainLabels[:ntr], v.Test, raw.testLabel[:nte], v.Dim, 10, 1.0/ntr, 60)
		t.Logf("%-9s dim %4d  logistic probe accuracy %.3f (1000 train, 1000 test images)", tc.spec, v.Dim, acc)
		if acc < tc.min {
			t.Errorf("%s: accuracy %.3f below %.2f", tc.spec, acc, tc.min)
		}
	}
}

// TestProbeFull reproduces DESIGN.md's view table: a logistic probe on 1000
// balanced labels (seed 1) of the full train split, scored on the 10000 test
// images. It builds the views into the user's cache (slow the first time), so it
// only runs when asked:
//
//	MCT_PROBE=1 go test -run TestProbeFull -v ./data
//	MCT_PROBE=hog,gabor ...   (a subset of views)
func TestProbeFull(t *testing.T) {
	which := os.Getenv("MCT_PROBE")
	if which == "" {
		t.Skip("set MCT_PROBE=1 (or a comma-separated list of views) to run")
	}
	views := []string{"pixels", "hog", "gabor", "randconv", "lbp"}
	if which != "1" {
		views = strings.Split(which, ",")
	}
	d, err := Open("fashion-mnist", views, Options{Progress: func(stage string, done, total int) {
		if done == total {
			t.Logf("%s: done", stage)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := MakeSplit(d.TrainLabels, d.Classes, 1000.0/60000, 0, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	y := make([]int32, len(s.Labeled))
	GatherLabels(y, d.TrainLabels, s.Labeled)
	for _, v := range d.Views {
		x := make([]float32, len(s.Labeled)*v.Dim)
		Gather(x, v.Train, v.Dim, s.Labeled)
		acc := logisticProbe(x, y, v.Test, d.TestLabels, v.Dim, d.Classes, 1.0/1000, 300)
		t.Logf("%-24s dim %5d  logistic probe accuracy %.4f (1000 labels, 10000 test)", v.Name, v.Dim, acc)
	}
}

// lbfgs minimises f (which returns the value and writes the gradient into g)
// from x with limited-memory BFGS (memory 10, Nocedal & Wright alg. 7.4) and a
// backtracking Armijo line search; enough for the smooth convex probe loss.
func lbfgs(x []float64, iters int, f func(x, g []float64) float64) []float64 {
	const m = 10
	n := len(x)
	g := make([]float64, n)
	fx := f(x, g)
	var ss, ys [][]float64
	var rho []float64
	d := make([]float64, n)
	xn := make([]float64, n)
	gn := make([]float64, n)
	alpha := make([]float64, m)
	dot := func(a, b []float64) (s float64) {
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	for it := 0; it < iters; it++ {
		// Two-loop recursion: d = -H·g.
		for i := range d {
			d[i] = -g[i]
		}
		for k := len(ss) - 1; k >= 0; k-- {
			alpha[k] = rho[k] * dot(ss[k], d)
			for i := range d {
				d[i] -= alpha[k] * ys[k][i]
			}
		}
		if k := len(ss) - 1; k >= 0 {
			gamma := dot(ss[k], ys[k]) / dot(ys[k], ys[k])
			for i := range d {
				d[i] *= gamma
			}
		} else {
			scale := 1 / math.Max(1, math.Sqrt(dot(g, g)))
			for i := range d {
				d[i] *= scale
			}
		}
		for k := range ss {
			b := rho[k] * dot(ys[k], d)
			for i := range d {
				d[i] += ss[k][i] * (alpha[k] - b)
			}
		}
		slope := dot(g, d)
		if slope >= 0 {
			return x // not a descent direction: converged to rounding
		}
		step, fn := 1.0, 0.0
		for {
			for i := range x {
				xn[i] = x[i] + step*d[i]
			}
			fn = f(xn, gn)
			if fn <= fx+1e-4*step*slope || step < 1e-10 {
				break
			}
			step /= 2
		}
		s, y := make([]float64, n), make([]float64, n)
		for i := range x {
			s[i], y[i] = xn[i]-x[i], gn[i]-g[i]
		}
		if sy := dot(s, y); sy > 1e-12 {
			if len(ss) == m {
				ss, ys, rho = ss[1:], ys[1:], rho[1:]
			}
			ss, ys, rho = append(ss, s), append(ys, y), append(rho, 1/sy)
		}
		copy(x, xn)
		copy(g, gn)
		done := math.Abs(fx-fn) < 1e-10*math.Max(1, math.Abs(fx))
		fx = fn
		if done || math.Sqrt(dot(g, g)) < 1e-7 {
			break
		}
	}
	return x
}
