// Package logreg is multinomial logistic regression fitted by L-BFGS: the linear probe
// used as the yardstick of a view's quality (DESIGN.md's view table) by the data and
// pretrained-view tests. Not on any training path.
package logreg

import "math"

// Model holds classes rows of dim weights and a bias (stride dim+1).
type Model struct {
	Dim, Classes int
	W            []float64
}

// Fit minimises the mean softmax cross-entropy plus lambda/2·‖W‖² (bias unpenalised)
// over the rows of x (row-major, dim columns) with iters of L-BFGS.
func Fit(x []float32, y []int32, dim, classes int, lambda float64, iters int) *Model {
	w := lbfgs(make([]float64, classes*(dim+1)), iters, func(w, g []float64) float64 {
		return probeLoss(w, g, x, y, dim, classes, lambda)
	})
	return &Model{Dim: dim, Classes: classes, W: w}
}

// Predict returns the most probable class of one row.
func (m *Model) Predict(row []float32) int {
	stride := m.Dim + 1
	best, arg := math.Inf(-1), 0
	for c := 0; c < m.Classes; c++ {
		z := m.W[c*stride+m.Dim]
		for j, v := range row {
			z += m.W[c*stride+j] * float64(v)
		}
		if z > best {
			best, arg = z, c
		}
	}
	return arg
}

// Correct counts the rows of x predicted as their label.
func (m *Model) Correct(x []float32, y []int32) int {
	n := 0
	for i, yi := range y {
		if m.Predict(x[i*m.Dim:(i+1)*m.Dim]) == int(yi) {
			n++
		}
	}
	return n
}

// Accuracy is Correct as a fraction.
func (m *Model) Accuracy(x []float32, y []int32) float64 {
	return float64(m.Correct(x, y)) / float64(len(y))
}

// probeLoss returns the penalised mean cross-entropy and writes its gradient into g.
func probeLoss(w, g []float64, x []float32, y []int32, dim, classes int, lambda float64) float64 {
	stride := dim + 1
	clear(g)
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
	for c := 0; c < classes; c++ {
		for j := 0; j < dim; j++ {
			v := w[c*stride+j]
			loss += lambda / 2 * v * v
			g[c*stride+j] += lambda * v
		}
	}
	return loss
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
