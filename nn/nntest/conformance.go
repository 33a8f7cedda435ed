// Package nntest checks that an nn.Backend implements the contract of nn/backend.go,
// by running every operation on it and on the CPU backend (itself checked against
// float64 references and PyTorch in package nn) with the same inputs.
//
// A backend's tests call it once:
//
//	func TestConformance(t *testing.T) { nntest.Conformance(t, kemu.New()) }
//
// Floating-point results must agree to a small multiple of float32 rounding relative
// to each output's scale; results that come from the counter RNG or from integer
// decisions (dropout masks, Gumbel-max samples, argmax) must agree exactly.
package nntest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mct/nn"
)

// Conformance runs every check as a subtest of t.
func Conformance(t *testing.T, b nn.Backend) {
	ref := nn.NewCPU()
	c := &checker{b: b, ref: ref, rng: rand.New(rand.NewPCG(7, 7))}
	for _, tc := range []struct {
		name string
		f    func(t *testing.T)
	}{
		{"Memory", c.memory}, {"GatherRows", c.gatherRows}, {"Gemm", c.gemm}, {"Elementwise", c.elementwise},
		{"Activation", c.activation}, {"BatchNorm", c.batchNorm}, {"Softmax", c.softmax},
		{"RNG", c.random}, {"Adam", c.adam}, {"Probe", c.probe},
	} {
		t.Run(tc.name, tc.f)
	}
}

type checker struct {
	b, ref nn.Backend
	rng    *rand.Rand
}

// pair is one host array living on both backends.
type pair struct{ b, ref nn.Buf }

func (c *checker) pair(x []float32) pair {
	p := pair{c.b.Alloc(len(x)), c.ref.Alloc(len(x))}
	c.b.Upload(p.b, x)
	c.ref.Upload(p.ref, x)
	return p
}

func (c *checker) randn(n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(scale * c.rng.NormFloat64())
	}
	return x
}

func get(b nn.Backend, x nn.Buf) []float32 {
	h := make([]float32, x.Len())
	b.Download(h, x)
	return h
}

// same compares a pair's contents: max error ≤ rtol·max(scale, 1e-6), or exactly
// when rtol is 0.
func (c *checker) same(t *testing.T, what string, p pair, rtol float64) {
	t.Helper()
	got, want := get(c.b, p.b), get(c.ref, p.ref)
	sameSlices(t, what, got, want, rtol)
}

func sameSlices(t *testing.T, what string, got, want []float32, rtol float64) {
	t.Helper()
	scale, worst, wi := 1e-6, 0.0, -1
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > worst || d != d {
			worst, wi = d, i
			if d != d {
				worst = math.Inf(1)
			}
		}
	}
	if wi >= 0 && worst > rtol*scale {
		t.Errorf("%s[%d] = %.9g, CPU backend %.9g (error %.2e > %.0e × scale %.3g)", what, wi, got[wi], want[wi], worst, rtol, scale)
	}
}

const tol = 2e-6

func (c *checker) memory(t *testing.T) {
	b := c.b
	x := b.Alloc(100)
	for i, v := range get(b, x) {
		if v != 0 {
			t.Fatalf("Alloc: element %d = %g, want 0", i, v)
		}
	}
	host := c.randn(100, 1)
	b.Upload(x, host)
	v := b.View(x, 10, 20)
	if v.Len() != 20 {
		t.Fatalf("View Len = %d, want 20", v.Len())
	}
	part := make([]float32, 20)
	b.Download(part, v)
	sameSlices(t, "View", part, host[10:30], 0)
	b.Fill(v, 5, 3)
	y := b.Alloc(100)
	b.Copy(y, x, 100)
	want := append([]float32(nil), host...)
	for i := 10; i < 15; i++ {
		want[i] = 3
	}
	sameSlices(t, "Fill through a View, then Copy", get(b, y), want, 0)
	b.Upload(b.View(y, 50, 2), []float32{-1, -2})
	want[50], want[51] = -1, -2
	sameSlices(t, "Upload into a View", get(b, y), want, 0)
	b.Sync()
	b.Free(x)
	b.Free(y)
}

// gatherRows checks GatherRows against a plain loop, bit for bit: rows picked with
// repeats, the first and the last row, from a View into a View (as the MCT step gathers
// into its input buffer), and one-column rows (labels). Small indices are denormal as
// float32, so a backend that read them as floats (or flushed denormals) would fail.
func (c *checker) gatherRows(t *testing.T) {
	b := c.b
	for _, cols := range []int{1, 7, 300} {
		const rows, n, off = 40, 57, 3
		host := c.randn((rows+off)*cols, 1)
		host[off*cols] = float32(math.Copysign(0, -1)) // -0 and a NaN payload survive a copy
		host[len(host)-1] = math.Float32frombits(0x7fc0beef)
		idx := make([]uint32, n)
		for i := range idx {
			idx[i] = uint32(c.rng.IntN(rows))
		}
		idx[0], idx[n-1], idx[n/2] = 0, rows-1, idx[1]
		ih := make([]float32, n)
		for i, k := range idx {
			ih[i] = nn.IndexBits(k)
		}
		src, ib := b.Alloc(len(host)), b.Alloc(n+2)
		b.Upload(src, host)
		b.Upload(b.View(ib, 2, n), ih)
		dst := b.Alloc((n+5)*cols + 1)
		b.Fill(dst, dst.Len(), 9)
		b.GatherRows(b.View(dst, 5*cols, n*cols), b.View(src, off*cols, rows*cols), cols, b.View(ib, 2, n), n)
		b.GatherRows(dst, src, cols, ib, 0) // no rows: nothing written
		got := get(b, dst)
		for i := range got {
			want := float32(9)
			if r := i/cols - 5; r >= 0 && r < n {
				want = host[(off+int(idx[r]))*cols+i%cols]
			}
			if math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("GatherRows, %d columns: dst[%d] = %g (%08x), want %g (%08x)", cols, i, got[i],
					math.Float32bits(got[i]), want, math.Float32bits(want))
			}
		}
		b.Free(src)
		b.Free(ib)
		b.Free(dst)
	}
}

func (c *checker) gemm(t *testing.T) {
	for _, sh := range [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {128, 96, 200}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, beta := range []float32{0, 1} {
					a, bb := c.pair(c.randn(m*k, 1)), c.pair(c.randn(k*n, 1))
					init := c.randn(m*n, 1)
					if beta == 0 {
						for i := range init {
							init[i] = float32(math.NaN())
						}
					}
					cc := c.pair(init)
					c.b.Gemm(tA, tB, m, n, k, 0.75, a.b, bb.b, beta, cc.b)
					c.ref.Gemm(tA, tB, m, n, k, 0.75, a.ref, bb.ref, beta, cc.ref)
					c.same(t, fmt.Sprintf("Gemm tA=%v tB=%v %dx%dx%d β=%g", tA, tB, m, n, k, beta), cc, 1e-5)
				}
			}
		}
	}
}

func (c *checker) elementwise(t *testing.T) {
	const rows, dc, sc = 37, 11, 9
	for _, beta := range []float32{0, 1} {
		dst, src := c.pair(c.randn(rows*dc, 1)), c.pair(c.randn(rows*sc, 1))
		c.b.CopyCols(dst.b, dc, 4, src.b, sc, 2, rows, 6, beta)
		c.ref.CopyCols(dst.ref, dc, 4, src.ref, sc, 2, rows, 6, beta)
		c.same(t, fmt.Sprintf("CopyCols β=%g", beta), dst, 0)
	}
	for _, blocks := range []int{1, 3} {
		const h = 6
		uw, iw, off := blocks*h, (blocks+1)*h, (blocks-1)*h
		w, eff := c.pair(c.randn(rows*iw, 1)), c.pair(make([]float32, rows*uw))
		c.b.FoldCols(eff.b, uw, w.b, iw, rows, off)
		c.ref.FoldCols(eff.ref, uw, w.ref, iw, rows, off)
		c.same(t, fmt.Sprintf("FoldCols %d blocks", blocks), eff, 0)
		for _, beta := range []float32{0, 1} {
			c.b.UnfoldCols(w.b, iw, eff.b, uw, rows, off, beta)
			c.ref.UnfoldCols(w.ref, iw, eff.ref, uw, rows, off, beta)
			c.same(t, fmt.Sprintf("UnfoldCols %d blocks β=%g", blocks, beta), w, 0)
		}
	}
	const n = 5000
	x, y := c.pair(c.randn(n, 1)), c.pair(c.randn(n, 1))
	c.b.Axpy(y.b, -0.3, x.b, n-1)
	c.ref.Axpy(y.ref, -0.3, x.ref, n-1)
	c.same(t, "Axpy", y, tol)
	c.b.Scale(y.b, n-2, 1.7)
	c.ref.Scale(y.ref, n-2, 1.7)
	c.same(t, "Scale", y, tol)
	c.b.Mul(y.b, x.b, n)
	c.ref.Mul(y.ref, x.ref, n)
	c.same(t, "Mul", y, tol)
	got, want := c.b.Dot(x.b, y.b, n-3), c.ref.Dot(x.ref, y.ref, n-3)
	if math.Abs(got-want) > 1e-6*(1+math.Abs(want)) {
		t.Errorf("Dot = %.10g, CPU %.10g", got, want)
	}
	out := c.pair(make([]float32, 4))
	c.b.DotTo(c.b.View(out.b, 0, 1), x.b, y.b, n-3)
	c.ref.DotTo(c.ref.View(out.ref, 0, 1), x.ref, y.ref, n-3)
	c.b.Mean(c.b.View(out.b, 1, 1), y.b, n-5)
	c.ref.Mean(c.ref.View(out.ref, 1, 1), y.ref, n-5)
	c.same(t, "DotTo, Mean", out, tol)
	for _, maxNorm := range []float32{1e3, 0.5} { // no clipping, then clipping
		g := c.randn(n, 1)
		gp := c.pair(g)
		c.b.ClipNorm(gp.b, n-7, maxNorm, c.b.View(out.b, 2, 1))
		c.ref.ClipNorm(gp.ref, n-7, maxNorm, c.ref.View(out.ref, 2, 1))
		c.same(t, fmt.Sprintf("ClipNorm(max %g) norm", maxNorm), out, tol)
		c.same(t, fmt.Sprintf("ClipNorm(max %g) x", maxNorm), gp, tol)
		c.b.ClipNorm(gp.b, n, maxNorm/2, nil)
		c.ref.ClipNorm(gp.ref, n, maxNorm/2, nil)
		c.same(t, fmt.Sprintf("ClipNorm(max %g) without norm", maxNorm/2), gp, tol)
	}
	const views, cnt = 3, 500
	truth := c.labels(cnt, 7)
	guess := make([]float32, views*cnt)
	for i := range guess {
		guess[i] = truth[i%cnt]
		if c.rng.IntN(3) == 0 {
			guess[i] = float32(c.rng.IntN(7))
		}
	}
	tp, gp, hits := c.pair(truth), c.pair(guess), c.pair(make([]float32, views))
	c.b.CountEqual(hits.b, gp.b, tp.b, views, cnt)
	c.ref.CountEqual(hits.ref, gp.ref, tp.ref, views, cnt)
	c.same(t, "CountEqual", hits, 0)
	for _, v := range []int{2, 3, 5} {
		src, dst := c.pair(c.randn(v*1111, 2)), c.pair(make([]float32, v*1111))
		c.b.MeanOthers(dst.b, src.b, v, 1111)
		c.ref.MeanOthers(dst.ref, src.ref, v, 1111)
		c.same(t, fmt.Sprintf("MeanOthers(%d views)", v), dst, 0)
	}

	rows2, cols2 := 300, 70
	m := c.pair(c.randn(rows2*cols2, 2))
	for _, beta := range []float32{0, 1} {
		s := c.pair(c.randn(cols2, 1))
		c.b.ColSums(s.b, m.b, rows2, cols2, beta)
		c.ref.ColSums(s.ref, m.ref, rows2, cols2, beta)
		c.same(t, fmt.Sprintf("ColSums β=%g", beta), s, tol)
	}
}

func (c *checker) activation(t *testing.T) {
	const rows, cols = 50, 33
	x, bias := c.pair(c.randn(rows*cols, 1)), c.pair(c.randn(cols, 1))
	c.b.AddBiasLeakyReLU(x.b, bias.b, rows, cols, 0.01)
	c.ref.AddBiasLeakyReLU(x.ref, bias.ref, rows, cols, 0.01)
	c.same(t, "AddBiasLeakyReLU", x, tol)
	c.b.AddBiasLeakyReLU(x.b, nil, rows, cols, 0.2)
	c.ref.AddBiasLeakyReLU(x.ref, nil, rows, cols, 0.2)
	c.same(t, "LeakyReLU without bias", x, tol)
	d := c.pair(c.randn(rows*cols, 1))
	c.b.LeakyReLUBackward(d.b, x.b, rows*cols, 0.2)
	c.ref.LeakyReLUBackward(d.ref, x.ref, rows*cols, 0.2)
	c.same(t, "LeakyReLUBackward", d, tol)
}

func (c *checker) batchNorm(t *testing.T) {
	const rows, cols = 64, 40
	xs := c.randn(rows*cols, 2)
	for i := range xs {
		xs[i] += 1.5
	}
	x := c.pair(xs)
	rm, rv := c.pair(c.randn(cols, 0.3)), c.pair(make([]float32, cols))
	c.b.Fill(rv.b, cols, 1.2)
	c.ref.Fill(rv.ref, cols, 1.2)
	g, be := c.pair(c.randn(cols, 1)), c.pair(c.randn(cols, 1))
	st, mean, vr, y := c.pair(make([]float32, 2*cols+1)), c.pair(make([]float32, cols)), c.pair(make([]float32, cols)), c.pair(make([]float32, rows*cols))
	c.b.BNStats(st.b, x.b, rm.b, rows, cols)
	c.ref.BNStats(st.ref, x.ref, rm.ref, rows, cols)
	c.same(t, "BNStats", st, 1e-5)
	c.b.BNMoments(mean.b, vr.b, rm.b, rv.b, st.b, cols, 0.1)
	c.ref.BNMoments(mean.ref, vr.ref, rm.ref, rv.ref, st.ref, cols, 0.1)
	c.same(t, "BNMoments mean", mean, 1e-5)
	c.same(t, "BNMoments var", vr, 1e-5)
	c.same(t, "BNMoments running_mean", rm, 1e-5)
	c.same(t, "BNMoments running_var", rv, 1e-5)
	c.b.BNNormalize(y.b, x.b, mean.b, vr.b, g.b, be.b, rows, cols, 1e-5)
	c.ref.BNNormalize(y.ref, x.ref, mean.ref, vr.ref, g.ref, be.ref, rows, cols, 1e-5)
	c.same(t, "BNNormalize", y, 1e-5)
	dy := c.pair(c.randn(rows*cols, 1))
	dg, db := c.pair(c.randn(cols, 1)), c.pair(c.randn(cols, 1))
	c.b.BNBackwardStats(st.b, dg.b, db.b, dy.b, x.b, mean.b, vr.b, rows, cols, 1e-5)
	c.ref.BNBackwardStats(st.ref, dg.ref, db.ref, dy.ref, x.ref, mean.ref, vr.ref, rows, cols, 1e-5)
	c.same(t, "BNBackwardStats", st, 1e-5)
	c.same(t, "BNBackwardStats dγ accumulated", dg, 1e-5)
	c.same(t, "BNBackwardStats dβ accumulated", db, 1e-5)
	c.b.BNBackwardStats(st.b, nil, nil, dy.b, x.b, mean.b, vr.b, rows, cols, 1e-5)
	c.ref.BNBackwardStats(st.ref, nil, nil, dy.ref, x.ref, mean.ref, vr.ref, rows, cols, 1e-5)
	c.same(t, "BNBackwardStats without affine gradients", st, 1e-5)
	dx := c.pair(make([]float32, rows*cols))
	c.b.BNBackward(dx.b, dy.b, x.b, mean.b, vr.b, g.b, st.b, rows, cols, 1e-5, 1)
	c.ref.BNBackward(dx.ref, dy.ref, x.ref, mean.ref, vr.ref, g.ref, st.ref, rows, cols, 1e-5, 1)
	c.same(t, "BNBackward", dx, 1e-5)
	c.b.BNBackward(dy.b, dy.b, x.b, mean.b, vr.b, g.b, st.b, rows, cols, 1e-5, 0.1)
	c.ref.BNBackward(dy.ref, dy.ref, x.ref, mean.ref, vr.ref, g.ref, st.ref, rows, cols, 1e-5, 0.1)
	c.same(t, "BNBackward in place", dy, 1e-5)
}

func (c *checker) labels(n, classes int) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(c.rng.IntN(classes))
	}
	return l
}

func (c *checker) softmax(t *testing.T) {
	const rows, cols = 200, 10
	x, lab := c.pair(c.randn(rows*cols, 4)), c.pair(c.labels(rows, cols))
	loss, dx := c.pair(make([]float32, rows)), c.pair(c.randn(rows*cols, 1))
	for _, beta := range []float32{0, 1} {
		c.b.SoftmaxCE(loss.b, dx.b, x.b, lab.b, rows, cols, 0.5, 0.01, beta, nil)
		c.ref.SoftmaxCE(loss.ref, dx.ref, x.ref, lab.ref, rows, cols, 0.5, 0.01, beta, nil)
		c.same(t, fmt.Sprintf("SoftmaxCE loss β=%g", beta), loss, 1e-5)
		c.same(t, fmt.Sprintf("SoftmaxCE dx β=%g", beta), dx, 1e-5)
	}
	c.b.SoftmaxCE(nil, dx.b, x.b, lab.b, rows, cols, 1, -0.3, 1, nil)
	c.ref.SoftmaxCE(nil, dx.ref, x.ref, lab.ref, rows, cols, 1, -0.3, 1, nil)
	c.same(t, "SoftmaxCE without loss", dx, 1e-5)
	// The scale read from device memory (the argument is then ignored: NaN here)
	// against the reference given it as an argument.
	sc := c.b.Alloc(1)
	defer c.b.Free(sc)
	c.b.Upload(sc, []float32{0.0123})
	c.b.SoftmaxCE(nil, dx.b, x.b, lab.b, rows, cols, 0.7, float32(math.NaN()), 1, sc)
	c.ref.SoftmaxCE(nil, dx.ref, x.ref, lab.ref, rows, cols, 0.7, 0.0123, 1, nil)
	c.same(t, "SoftmaxCE with its scale in device memory", dx, 1e-5)
	y := c.pair(make([]float32, rows*cols))
	c.b.Softmax(y.b, x.b, rows, cols, 2)
	c.ref.Softmax(y.ref, x.ref, rows, cols, 2)
	c.same(t, "Softmax", y, 1e-5)
	am := c.pair(make([]float32, rows))
	c.b.Argmax(am.b, x.b, rows, cols)
	c.ref.Argmax(am.ref, x.ref, rows, cols)
	c.same(t, "Argmax", am, 0)
}

func (c *checker) random(t *testing.T) {
	const rows, cols = 129, 77
	m := c.pair(make([]float32, rows*cols))
	key := nn.RNGKey{Seed: 0xfeedface12345678, Step: 3, Stream: nn.StreamDropout + 2}
	c.b.DropoutMask(m.b, rows, cols, 0.35, key, 1000, nil)
	c.ref.DropoutMask(m.ref, rows, cols, 0.35, key, 1000, nil)
	c.same(t, "DropoutMask (bit-exact Philox)", m, 0)
	// The RNG step read from device memory, beyond float32's exact integers.
	stepAt := c.b.Alloc(1)
	defer c.b.Free(stepAt)
	c.b.Upload(stepAt, []float32{nn.IndexBits(1<<31 + 7)})
	c.b.DropoutMask(m.b, rows, cols, 0.35, key, 1000, stepAt)
	k2 := key
	k2.Step = 1<<31 + 7
	c.ref.DropoutMask(m.ref, rows, cols, 0.35, k2, 1000, nil)
	c.same(t, "DropoutMask with its step in device memory", m, 0)

	const n, classes = 2000, 10
	x := c.pair(c.randn(n*classes, 2))
	idx := make([]uint32, n)
	for i := range idx {
		idx[i] = uint32(c.rng.IntN(1 << 30))
	}
	ih := make([]float32, n)
	for i, v := range idx {
		ih[i] = nn.IndexBits(v)
	}
	ib := c.pair(ih)
	s := c.pair(make([]float32, n))
	skey := nn.RNGKey{Seed: 99, Step: 12345, Stream: 1}
	c.b.SampleGumbel(s.b, x.b, n, classes, 1/1.5, skey, ib.b, nil)
	c.ref.SampleGumbel(s.ref, x.ref, n, classes, 1/1.5, skey, ib.ref, nil)
	c.same(t, "SampleGumbel (bit-exact Philox)", s, 0)
	c.b.Upload(stepAt, []float32{nn.IndexBits(54321)})
	c.b.SampleGumbel(s.b, x.b, n, classes, 1/1.5, skey, ib.b, stepAt)
	skey.Step = 54321
	c.ref.SampleGumbel(s.ref, x.ref, n, classes, 1/1.5, skey, ib.ref, nil)
	c.same(t, "SampleGumbel with its step in device memory", s, 0)
}

func (c *checker) adam(t *testing.T) {
	const n = 3001
	w, g := c.pair(c.randn(n, 1)), c.pair(c.randn(n, 1))
	m, v := c.pair(make([]float32, n)), c.pair(make([]float32, n))
	sched := c.b.Alloc(2)
	defer c.b.Free(sched)
	for step := 1; step <= 4; step++ {
		h := nn.AdamHyper{StepSize: float32(1e-3 / (1 - math.Pow(0.9, float64(step)))), Beta1: 0.9, Beta2: 0.999,
			Eps: 1e-8, WeightDecay: 0.01, BC2Sqrt: float32(math.Sqrt(1 - math.Pow(0.999, float64(step)))),
			OneMinusBeta1: 0.1, OneMinusBeta2: 0.001}
		c.ref.Adam(w.ref, g.ref, m.ref, v.ref, n, h, nil)
		if step%2 == 0 {
			// The per-step scalars from device memory; the arguments are ignored.
			c.b.Upload(sched, []float32{h.StepSize, h.BC2Sqrt})
			h.StepSize, h.BC2Sqrt = float32(math.NaN()), float32(math.NaN())
			c.b.Adam(w.b, g.b, m.b, v.b, n, h, sched)
			continue
		}
		c.b.Adam(w.b, g.b, m.b, v.b, n, h, nil)
	}
	c.same(t, "Adam params", w, 1e-6)
	c.same(t, "Adam m", m, 1e-5)
	c.same(t, "Adam v", v, 1e-5)
	c.same(t, "Adam leaves g", g, 0)
}

// probe runs the same small FCNN (with dropout) on both backends: a Train forward,
// loss, backward, clip and Adam step, then a keepWeights backward after the step.
func (c *checker) probe(t *testing.T) {
	cfg := nn.Config{Arch: "fcnn", In: 20, Classes: 5, Hidden: []int{32, 32, 32}, Dropout: 0.1, Temperature: 1.5}
	const n = 48
	x, lab := c.randn(n*cfg.In, 1), c.labels(n, cfg.Classes)
	type run struct {
		logits, grads, params, kept []float32
		loss, norm                  float32
	}
	do := func(b nn.Backend) run {
		p, err := nn.NewProbe(b, cfg, 5)
		if err != nil {
			t.Fatal(err)
		}
		xb, lb, dl := b.Alloc(len(x)), b.Alloc(n), b.Alloc(n*cfg.Classes)
		b.Upload(xb, x)
		b.Upload(lb, lab)
		tape := p.NewTape(n, true)
		g := p.NewGrads()
		logits := p.Forward(tape, xb, n, nn.Train)
		var r run
		r.loss = nn.CrossEntropy(b, logits, n, cfg.Classes, lb, dl, 1)
		r.logits = get(b, logits)
		p.Backward(tape, dl, g)
		r.grads = get(b, g.Flat())
		r.norm = nn.ClipGradNorm(b, g, 0.5)
		nn.NewAdam(p, 1e-2).Step(g)
		r.params = get(b, p.Flat())
		g.Zero()
		p.Backward(tape, dl, g)
		r.kept = get(b, g.Flat())
		return r
	}
	got, want := do(c.b), do(c.ref)
	sameSlices(t, "probe logits", got.logits, want.logits, 1e-5)
	sameSlices(t, "probe loss", []float32{got.loss}, []float32{want.loss}, 1e-5)
	sameSlices(t, "probe grads", got.grads, want.grads, 1e-4)
	sameSlices(t, "probe clip norm", []float32{got.norm}, []float32{want.norm}, 1e-5)
	sameSlices(t, "probe params after Adam", got.params, want.params, 1e-5)
	sameSlices(t, "probe keepWeights grads", got.kept, want.kept, 1e-4)
	sameSlices(t, "keepWeights grads = grads before the step", got.kept, got.grads, 0)
}
