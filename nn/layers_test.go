package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Layer-by-layer gradient checks: each backend kernel pair against central
// differences of a float64 version of the layer, for L = Σ r⊙y with random r.

const fdStep = 1e-6

// fdGrad returns dL/dv for every element of v by central differences of loss().
func fdGrad(v []float64, loss func() float64) []float64 {
	g := make([]float64, len(v))
	for i := range v {
		old := v[i]
		v[i] = old + fdStep
		a := loss()
		v[i] = old - fdStep
		c := loss()
		v[i] = old
		g[i] = (a - c) / (2 * fdStep)
	}
	return g
}

func dot64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func TestLinearLeakyReLUGrad(t *testing.T) {
	b := NewCPU()
	rng := rand.New(rand.NewPCG(1, 1))
	const n, in, out = 5, 4, 3
	const slope = 0.1
	x, w, bias, r := randNormal(rng, n*in, 1), randNormal(rng, out*in, 1), randNormal(rng, out, 1), randNormal(rng, n*out, 1)
	f := func() []float64 { return refLReLU(refLinear(x, n, in, w, bias, out), slope) }
	loss := func() float64 { return dot64(r, f()) }

	xb, wb, bb := upload(b, x), upload(b, w), upload(b, bias)
	y := b.Alloc(n * out)
	b.Gemm(false, true, n, out, in, 1, xb, wb, 0, y)
	b.AddBiasLeakyReLU(y, bb, n, out, slope)
	closeTo(t, "y", hostOf(b, y), f(), 1e-6, 1e-6)
	d := upload(b, r)
	b.LeakyReLUBackward(d, d, y, n*out, slope)
	dw, db, dx := b.Alloc(out*in), b.Alloc(out), b.Alloc(n*in)
	b.Gemm(true, false, out, in, n, 1, d, xb, 0, dw)
	b.ColSums(db, d, n, out, 0)
	b.Gemm(false, false, n, in, out, 1, d, wb, 0, dx)
	closeTo(t, "dW", hostOf(b, dw), fdGrad(w, loss), 1e-6, 1e-5)
	closeTo(t, "db", hostOf(b, db), fdGrad(bias, loss), 1e-6, 1e-5)
	closeTo(t, "dx", hostOf(b, dx), fdGrad(x, loss), 1e-6, 1e-5)
}

func TestBatchNormTrainGrad(t *testing.T) {
	b := NewCPU()
	rng := rand.New(rand.NewPCG(2, 2))
	const n, cols = 7, 3
	const eps, mom = 1e-5, 0.1
	x, g, be, r := randNormal(rng, n*cols, 2), randNormal(rng, cols, 1), randNormal(rng, cols, 1), randNormal(rng, n*cols, 1)
	for i := range x {
		x[i] += 3 // a mean far from the running mean (0) exercises the shifted sums
	}
	rm, rv := make([]float64, cols), []float64{1, 1, 1}
	f := func() []float64 { y, _, _ := refBN(x, n, cols, g, be, rm, rv, eps, mom, true); return y }
	loss := func() float64 { return dot64(r, f()) }

	xb, gb, bb := upload(b, x), upload(b, g), upload(b, be)
	rmb, rvb := upload(b, rm), upload(b, rv)
	st, mean, vr, y := b.Alloc(2*cols+1), b.Alloc(cols), b.Alloc(cols), b.Alloc(n*cols)
	b.BNStats(st, xb, rmb, n, cols)
	b.BNMoments(mean, vr, rmb, rvb, st, cols, mom)
	b.BNNormalize(y, cols, xb, mean, vr, gb, bb, n, cols, eps)
	_, wantRM, wantRV := refBN(x, n, cols, g, be, rm, rv, eps, mom, true)
	closeTo(t, "y", hostOf(b, y), f(), 1e-5, 1e-5)
	closeTo(t, "running_mean", hostOf(b, rmb), wantRM, 1e-6, 1e-6)
	closeTo(t, "running_var", hostOf(b, rvb), wantRV, 1e-6, 1e-6)

	d, dx := upload(b, r), b.Alloc(n*cols)
	b.BNBackwardStats(st, nil, nil, d, xb, mean, vr, n, cols, eps, 1)
	b.BNBackward(dx, d, xb, mean, vr, gb, st, n, cols, eps, 1)
	// With a LeakyReLU derivative: exactly BNBackward then LeakyReLUBackward.
	dxl, ref := b.Alloc(n*cols), b.Alloc(n*cols)
	b.BNBackward(dxl, d, xb, mean, vr, gb, st, n, cols, eps, 0.1)
	b.Copy(ref, dx, n*cols)
	b.LeakyReLUBackward(ref, ref, xb, n*cols, 0.1)
	sameBits(t, "BNBackward with a LeakyReLU derivative", hostOf(b, dxl), hostOf(b, ref))
	h := hostOf(b, st)
	closeTo(t, "dβ (S1)", h[:cols], fdGrad(be, loss), 1e-5, 1e-5)
	closeTo(t, "dγ (S2)", h[cols:2*cols], fdGrad(g, loss), 1e-5, 1e-5)
	closeTo(t, "dx", hostOf(b, dx), fdGrad(x, loss), 1e-5, 1e-4)
	if h[2*cols] != n {
		t.Fatalf("count slot %g, want %d", h[2*cols], n)
	}
}

func TestConcatGrad(t *testing.T) {
	b := NewCPU()
	rng := rand.New(rand.NewPCG(3, 3))
	const n, wa, wb = 4, 3, 2
	a, c := randNormal(rng, n*wa, 1), randNormal(rng, n*wb, 1)
	r := randNormal(rng, n*(2*wa+wb), 1)
	// y = [a, c, a]
	f := func() []float64 { y, _ := refConcat(n, [][]float64{a, c, a}, []int{wa, wb, wa}); return y }
	loss := func() float64 { return dot64(r, f()) }
	ab, cb, y := upload(b, a), upload(b, c), b.Alloc(n*(2*wa+wb))
	W := 2*wa + wb
	b.CopyCols(y, W, 0, ab, wa, 0, n, wa, 0)
	b.CopyCols(y, W, wa, cb, wb, 0, n, wb, 0)
	b.CopyCols(y, W, wa+wb, ab, wa, 0, n, wa, 0)
	closeTo(t, "concat", hostOf(b, y), f(), 0, 1e-7)
	d := upload(b, r)
	da, dc := b.Alloc(n*wa), b.Alloc(n*wb)
	b.CopyCols(da, wa, 0, d, W, 0, n, wa, 0)
	b.CopyCols(dc, wb, 0, d, W, wa, n, wb, 0)
	b.CopyCols(da, wa, 0, d, W, wa+wb, n, wa, 1)
	closeTo(t, "da", hostOf(b, da), fdGrad(a, loss), 1e-7, 1e-6)
	closeTo(t, "dc", hostOf(b, dc), fdGrad(c, loss), 1e-7, 1e-6)
}

func TestSoftmaxCETemperatureGrad(t *testing.T) {
	b := NewCPU()
	rng := rand.New(rand.NewPCG(4, 4))
	const n, C, T = 5, 4, 1.7
	x := randNormal(rng, n*C, 3)
	labels := []int{0, 3, 1, 1, 2}
	scaled := make([]float64, len(x))
	loss := func() float64 {
		for i, v := range x {
			scaled[i] = v / T
		}
		l, _ := refCE(scaled, labels, C)
		return l
	}
	xb, lb, lossB, dx := upload(b, x), labelsBuf(b, labels), b.Alloc(n), b.Alloc(n*C)
	b.Fill(dx, n*C, 7) // beta = 0 must overwrite
	b.SoftmaxCE(lossB, dx, xb, lb, n, C, 1/T, 1/(T*n), 0, nil)
	var mean float64
	for _, v := range hostOf(b, lossB) {
		mean += float64(v) / n
	}
	if want := loss(); math.Abs(mean-want) > 1e-6*want {
		t.Fatalf("loss %g, want %g", mean, want)
	}
	want := fdGrad(x, loss)
	closeTo(t, "dx", hostOf(b, dx), want, 1e-7, 1e-5)
	// beta = 1 accumulates a second, scaled piece (the MCT teacher sums over views).
	b.SoftmaxCE(nil, dx, xb, lb, n, C, 1/T, -0.5/(T*n), 1, nil)
	for i := range want {
		want[i] *= 0.5
	}
	closeTo(t, "accumulated dx", hostOf(b, dx), want, 1e-7, 1e-5)

	y := b.Alloc(n * C)
	b.Softmax(y, xb, n, C, 1/T)
	_, p := refCE(scaled, []int{0, 0, 0, 0, 0}, C)
	for r := 0; r < n; r++ {
		p[r*C] += 1.0 / n
	}
	for i := range p {
		p[i] *= n
	}
	closeTo(t, "softmax", hostOf(b, y), p, 1e-7, 1e-6)
}

func TestArgmaxAndGumbelSampling(t *testing.T) {
	b := NewCPU()
	x := []float64{0.1, 2, -1, 2, 5, 5, 0.3, 0.2}
	am := b.Alloc(4)
	b.Argmax(am, upload(b, x), 4, 2)
	if got := hostOf(b, am); got[0] != 1 || got[1] != 1 || got[2] != 0 || got[3] != 0 {
		t.Fatalf("argmax %v, want [1 1 0 0] (ties take the first)", got)
	}

	// Frequencies of Gumbel-max draws over many example indices match softmax(x/T).
	const rows, C, T = 40000, 4, 2.0
	logits := []float64{1, 0, -1, 2.5}
	all := make([]float64, rows*C)
	idx := make([]uint32, rows)
	for r := 0; r < rows; r++ {
		copy(all[r*C:], logits)
		idx[r] = uint32(1000 + 3*r)
	}
	key := RNGKey{Seed: 77, Step: 5, Stream: 1}
	dst := b.Alloc(rows)
	b.SampleGumbel(dst, upload(b, all), rows, C, 1/T, key, indexBuf(b, idx), nil)
	counts := make([]float64, C)
	draws := hostOf(b, dst)
	for _, v := range draws {
		counts[int(v)]++
	}
	var z float64
	for _, l := range logits {
		z += math.Exp(l / T)
	}
	for c, l := range logits {
		p := math.Exp(l/T) / z
		sd := math.Sqrt(p * (1 - p) / rows)
		if f := counts[c] / rows; math.Abs(f-p) > 5*sd {
			t.Errorf("class %d drawn with frequency %.4f, want %.4f ± %.4f", c, f, p, sd)
		}
	}
	// The draw is a function of (key, example index): a batch holding rows in another
	// order with their indices gives the same labels.
	rev, revIdx := make([]float64, 0, 10*C), make([]uint32, 0, 10)
	for r := 9; r >= 0; r-- {
		rev = append(rev, all[r*C:(r+1)*C]...)
		revIdx = append(revIdx, idx[r])
	}
	d2 := b.Alloc(10)
	b.SampleGumbel(d2, upload(b, rev), 10, C, 1/T, key, indexBuf(b, revIdx), nil)
	for i, v := range hostOf(b, d2) {
		if v != draws[9-i] {
			t.Fatalf("row with index %d drew %g in another layout, %g before", revIdx[i], v, draws[9-i])
		}
	}
}

func TestDropoutMask(t *testing.T) {
	b := NewCPU()
	const rows, cols, p = 300, 100, 0.3
	m := b.Alloc(rows * cols)
	b.DropoutMask(m, rows, cols, p, RNGKey{Seed: 1, Step: 2, Stream: StreamDropout}, 0, nil)
	zeros := 0
	for _, v := range hostOf(b, m) {
		switch v {
		case 0:
			zeros++
		case 1 / (1 - p):
		default:
			t.Fatalf("mask value %g, want 0 or %g", v, 1/(1-p))
		}
	}
	sd := math.Sqrt(p * (1 - p) / (rows * cols))
	if f := float64(zeros) / (rows * cols); math.Abs(f-p) > 5*sd {
		t.Fatalf("dropped fraction %.4f, want %.2f", f, p)
	}
}

// TestAdamSteps follows torch.optim.Adam's single-tensor update in float64 over
// several steps with weight decay.
func TestAdamSteps(t *testing.T) {
	b := NewCPU()
	p, _ := NewProbe(b, Config{Arch: "linear", In: 6, Classes: 3}, 9)
	opt := NewAdam(p, 0.01)
	opt.WeightDecay = 0.05
	rng := rand.New(rand.NewPCG(5, 5))
	w := download64(b, p.Flat())
	m, v := make([]float64, len(w)), make([]float64, len(w))
	g := p.NewGrads()
	for step := 1; step <= 4; step++ {
		gr := randNormal(rng, len(w), 1)
		b.Upload(g.Flat(), to32(gr))
		gr = download64(b, g.Flat())
		opt.Step(g)
		for i := range w {
			gi := gr[i] + 0.05*w[i]
			m[i] = 0.9*m[i] + 0.1*gi
			v[i] = 0.999*v[i] + 0.001*gi*gi
			bc1, bc2 := 1-math.Pow(0.9, float64(step)), 1-math.Pow(0.999, float64(step))
			w[i] -= 0.01 / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + 1e-8)
		}
		closeTo(t, "params", hostOf(b, p.Flat()), w, 1e-6, 1e-5)
	}
}

func TestClipGradNorm(t *testing.T) {
	b := NewCPU()
	p, _ := NewProbe(b, Config{Arch: "linear", In: 3, Classes: 2}, 1)
	g := p.NewGrads()
	b.Upload(g.Flat(), []float32{3, 0, 0, 4, 0, 0, 0, 0})
	if n := ClipGradNorm(b, g, 10); n != 5 || hostOf(b, g.Flat())[3] != 4 {
		t.Fatalf("norm %g (want 5), unclipped grads changed: %v", n, hostOf(b, g.Flat()))
	}
	if n := ClipGradNorm(b, g, 1); n != 5 {
		t.Fatalf("norm %g, want 5", n)
	}
	if got := hostOf(b, g.Flat()); math.Abs(float64(got[0])-3/(5+1e-6)) > 1e-7 || math.Abs(float64(got[3])-4/(5+1e-6)) > 1e-7 {
		t.Fatalf("clipped grads %v, want [0.6 0 0 0.8 …]", got)
	}
}

// indexBuf uploads row indices as SampleGumbel takes them (IndexBits).
func indexBuf(b Backend, idx []uint32) Buf {
	h := make([]float32, len(idx))
	for i, v := range idx {
		h[i] = IndexBits(v)
	}
	return put(b, h)
}

// TestIndexBitsExact: every uint32 survives the float32 slot, NaN patterns included,
// and the sampler keys on the index, not on a float value.
func TestIndexBitsExact(t *testing.T) {
	b := NewCPU()
	idx := []uint32{0, 1, 1 << 23, 1<<24 + 1, 0x7f800001, 0xffffffff}
	got := hostOf(b, indexBuf(b, idx))
	for i, v := range idx {
		if math.Float32bits(got[i]) != v {
			t.Errorf("index %#x came back as %#x", v, math.Float32bits(got[i]))
		}
	}
	// 2^24+1 and 2^24 are one float32 apart as values but must draw independently.
	x := upload(b, make([]float64, 2*50))
	d := b.Alloc(2)
	b.SampleGumbel(d, x, 2, 50, 1, RNGKey{Seed: 3}, indexBuf(b, []uint32{1 << 24, 1<<24 + 1}), nil)
	if h := hostOf(b, d); h[0] == h[1] {
		// Two independent uniform draws over 50 classes agree with probability 1/50;
		// this key and these rows are chosen to differ.
		t.Errorf("rows 2^24 and 2^24+1 drew the same class %g", h[0])
	}
}

// TestDeviceScalars checks the reductions that stay on the device against float64:
// Mean, DotTo, ClipNorm (norm and scaling, both branches), CountEqual, MeanOthers
// (bit-identical to the Fill+Axpy loop it replaces).
func TestDeviceScalars(t *testing.T) {
	b := NewCPU()
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 40000 // several Dot chunks
	x, y := make([]float64, n), make([]float64, n)
	for i := range x {
		x[i], y[i] = rng.NormFloat64()*3+1, rng.NormFloat64()
	}
	X, Y, out := upload(b, x), upload(b, y), b.Alloc(3)
	b.Mean(b.View(out, 0, 1), X, n)
	b.DotTo(b.View(out, 1, 1), X, Y, n)
	var sum float64
	for i := range x {
		sum += float64(float32(x[i]))
	}
	var dot float64
	for i := range x {
		dot += float64(float32(x[i])) * float64(float32(y[i]))
	}
	got := hostOf(b, out)
	if want := float32(sum / n); got[0] != want {
		t.Errorf("Mean = %.9g, float64 reference %.9g", got[0], want)
	}
	if math.Abs(float64(got[1])-dot) > 1e-6*math.Abs(dot) {
		t.Errorf("DotTo = %.9g, float64 reference %.9g", got[1], dot)
	}

	var sq float64
	for i := range x {
		v := float64(float32(x[i]))
		sq += v * v
	}
	norm := math.Sqrt(sq)
	for _, maxNorm := range []float32{float32(2 * norm), float32(norm / 7)} {
		G := upload(b, x)
		b.ClipNorm(G, n, maxNorm, b.View(out, 2, 1))
		if got := hostOf(b, out)[2]; math.Abs(float64(got)-norm) > 1e-6*norm {
			t.Errorf("ClipNorm(max %g): norm %.9g, float64 %.9g", maxNorm, got, norm)
		}
		coef := math.Min(1, float64(maxNorm)/(norm+1e-6))
		g := hostOf(b, G)
		for i := range g {
			if want := float64(float32(x[i])) * coef; math.Abs(float64(g[i])-want) > 1e-6*math.Abs(want)+1e-12 {
				t.Fatalf("ClipNorm(max %g)[%d] = %.9g, want %.9g", maxNorm, i, g[i], want)
			}
		}
	}
	// The norm may be nil: the clip alone.
	G := upload(b, x)
	b.ClipNorm(G, n, 1, nil)
	if g := hostOf(b, G); math.Abs(float64(g[0])-float64(float32(x[0]))/(norm+1e-6)) > 1e-6 {
		t.Errorf("ClipNorm without norm output: %g", g[0])
	}

	labels := upload(b, []float64{0, 1, 2, 3, 1})
	yhat := upload(b, []float64{0, 1, 2, 0, 1, 3, 3, 3, 3, 3, 0, 1, 2, 3, 1})
	hits := b.Alloc(3)
	b.CountEqual(hits, yhat, labels, 3, 5)
	if h := hostOf(b, hits); h[0] != 4 || h[1] != 1 || h[2] != 5 {
		t.Errorf("CountEqual = %v, want [4 1 5]", h)
	}

	for _, views := range []int{2, 3, 4} {
		const m = 777
		src := make([]float64, views*m)
		for i := range src {
			src[i] = rng.NormFloat64()
		}
		S, dst, ref := upload(b, src), b.Alloc(views*m), b.Alloc(views*m)
		b.MeanOthers(dst, S, views, m)
		for w := 0; w < views; w++ {
			r := b.View(ref, w*m, m)
			b.Fill(r, m, 0)
			for o := 0; o < views; o++ {
				if o != w {
					b.Axpy(r, 1/float32(views-1), b.View(S, o*m, m), m)
				}
			}
		}
		got, want := hostOf(b, dst), hostOf(b, ref)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("MeanOthers(%d views)[%d] = %g, Fill+Axpy gives %g", views, i, got[i], want[i])
			}
		}
		// And against float64: the mean of the other views.
		for w := 0; w < views; w++ {
			for i := 0; i < m; i++ {
				var s float64
				for o := 0; o < views; o++ {
					if o != w {
						s += float64(float32(src[o*m+i]))
					}
				}
				if d := math.Abs(float64(got[w*m+i]) - s/float64(views-1)); d > 1e-6*(1+math.Abs(s)) {
					t.Fatalf("MeanOthers(%d views)[%d,%d] = %g, float64 %g", views, w, i, got[w*m+i], s/float64(views-1))
				}
			}
		}
	}
}

// TestFoldCols: FoldCols and UnfoldCols give bit for bit what the CopyCols sequences
// they replace give (the effective weight of [h0, h1, h1], and its gradient scattered
// back to the three blocks), and are each other's adjoint.
func TestFoldCols(t *testing.T) {
	b := NewCPU()
	rng := rand.New(rand.NewPCG(8, 9))
	randn := func(n int) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		return x
	}
	const rows, h = 13, 7
	for _, blocks := range []int{1, 2, 3} { // unique blocks; the last repeats
		uw, iw, off := blocks*h, (blocks+1)*h, (blocks-1)*h
		W, ref, got := upload(b, randn(rows*iw)), b.Alloc(rows*uw), b.Alloc(rows*uw)
		for k := 0; k < blocks; k++ {
			b.CopyCols(ref, uw, k*h, W, iw, k*h, rows, h, 0)
		}
		b.CopyCols(ref, uw, off, W, iw, uw, rows, h, 1)
		b.FoldCols(got, uw, W, iw, rows, off)
		sameBits(t, "FoldCols", hostOf(b, got), hostOf(b, ref))

		D := upload(b, randn(rows*uw))
		g0 := randn(rows * iw)
		gRef, gGot := upload(b, g0), upload(b, g0)
		for k := 0; k < blocks; k++ {
			b.CopyCols(gRef, iw, k*h, D, uw, k*h, rows, h, 1)
		}
		b.CopyCols(gRef, iw, uw, D, uw, off, rows, h, 1)
		b.UnfoldCols(gGot, iw, D, uw, rows, off, 1)
		sameBits(t, "UnfoldCols", hostOf(b, gGot), hostOf(b, gRef))

		// Adjoint: ⟨Fold(W), D⟩ = ⟨W, Unfold(D)⟩ (beta = 0 overwrites).
		U := b.Alloc(rows * iw)
		b.Fill(U, rows*iw, float32(math.NaN()))
		b.UnfoldCols(U, iw, D, uw, rows, off, 0)
		lhs, rhs := b.Dot(got, D, rows*uw), b.Dot(W, U, rows*iw)
		if math.Abs(lhs-rhs) > 1e-5*math.Abs(lhs) {
			t.Errorf("%d blocks: <Fold W, D> = %g, <W, Unfold D> = %g", blocks, lhs, rhs)
		}
	}
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}
