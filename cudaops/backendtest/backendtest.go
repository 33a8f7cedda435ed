// Package backendtest checks an nn.Backend against the CPU backend: every
// operation on the same random inputs, then a probe's forward, loss,
// backward, clipping and Adam step, compared within a tolerance (max-norm
// relative error) or exactly where the result is a choice (argmax, sampling,
// dropout masks). cudaops runs it on the GPU, kemu on its CPU emulation of
// the same kernels.
package backendtest

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"mct/nn"
)

// GemmMode is one GEMM precision of the backend under test.
type GemmMode struct {
	Name string
	Tol  float64
	Set  func() // switches the backend to this precision
}

// Options tune Run.
type Options struct {
	// Tol bounds the relative error of float results (default 1e-5).
	Tol float64
	// GemmModes, if set, repeats the GEMM comparison in each mode; Run
	// leaves the backend in the first mode.
	GemmModes []GemmMode
	// Small shrinks the shapes, for slow backends.
	Small bool
}

// Run runs every check as a subtest of t.
func Run(t *testing.T, b nn.Backend, o Options) {
	if o.Tol == 0 {
		o.Tol = 1e-5
	}
	s := &suite{b: b, o: o}
	t.Run("Memory", s.memory)
	t.Run("GatherRows", s.gatherRows)
	t.Run("Gemm", s.gemm)
	t.Run("Elementwise", s.elementwise)
	t.Run("BatchNorm", s.batchNorm)
	t.Run("Softmax", s.softmax)
	t.Run("Choices", s.choices)
	t.Run("Scalars", s.scalars)
	t.Run("Adam", s.adam)
	t.Run("Probe", s.probe)
}

type suite struct {
	b nn.Backend
	o Options
}

// pick returns small under Options.Small, else full.
func (s *suite) pick(full, small int) int {
	if s.o.Small {
		return small
	}
	return full
}

var cpu = nn.NewCPU()

func randn(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
	}
	return x
}

func labels(r *rand.Rand, n, classes int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.Intn(classes))
	}
	return x
}

func put(b nn.Backend, h []float32) nn.Buf {
	x := b.Alloc(len(h))
	b.Upload(x, h)
	return x
}

func get(b nn.Backend, x nn.Buf) []float32 {
	h := make([]float32, x.Len())
	b.Download(h, x)
	return h
}

// both runs f on the backend under test and on the CPU with the same inputs
// and returns the named outputs of each.
func (s *suite) both(f func(b nn.Backend) map[string][]float32) (g, c map[string][]float32) {
	return f(s.b), f(cpu)
}

// relErr is max|a−b| / max|b| (or max|a−b| when b is all zero).
func relErr(a, b []float32) float64 {
	var d, s float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		s = math.Max(s, math.Abs(float64(b[i])))
	}
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	if s == 0 {
		return d
	}
	return d / s
}

func compare(t *testing.T, what string, g, c map[string][]float32, tol float64) {
	t.Helper()
	if len(g) != len(c) {
		t.Fatalf("%s: %d outputs from the backend, %d from the CPU", what, len(g), len(c))
	}
	for k, cv := range c {
		gv := g[k]
		if len(gv) != len(cv) {
			t.Errorf("%s/%s: length %d vs %d", what, k, len(gv), len(cv))
			continue
		}
		if tol == 0 {
			for i := range cv {
				if math.Float32bits(gv[i]) != math.Float32bits(cv[i]) {
					t.Errorf("%s/%s[%d]: backend %g, CPU %g (want identical)", what, k, i, gv[i], cv[i])
					break
				}
			}
			continue
		}
		if e := relErr(gv, cv); !(e <= tol) {
			t.Errorf("%s/%s: relative error %.3g > %.g", what, k, e, tol)
		}
	}
}

func (s *suite) memory(t *testing.T) {
	tb := s.b
	r := rand.New(rand.NewSource(1))
	h := randn(r, 1000, 1)
	x := put(tb, h)
	defer tb.Free(x)
	y := tb.Alloc(1000)
	defer tb.Free(y)
	if z := get(tb, y); relErr(z, make([]float32, 1000)) != 0 {
		t.Fatal("Alloc is not zeroed")
	}
	tb.Copy(tb.View(y, 100, 500), tb.View(x, 300, 500), 500)
	tb.Fill(tb.View(y, 0, 50), 50, -2.5)
	got := get(tb, y)
	for i := range got {
		want := float32(0)
		switch {
		case i < 50:
			want = -2.5
		case i >= 100 && i < 600:
			want = h[i+200]
		}
		if got[i] != want {
			t.Fatalf("y[%d] = %g, want %g", i, got[i], want)
		}
	}
	part := make([]float32, 10)
	tb.Download(part, tb.View(x, 990, 10))
	if relErr(part, h[990:]) != 0 {
		t.Fatal("Download of a view")
	}
	tb.Free(tb.View(x, 0, 10)) // a no-op
	if relErr(get(tb, x), h) != 0 {
		t.Fatal("freeing a view touched its parent")
	}
}

// gatherRows checks GatherRows against a plain loop, bit for bit, at the MCT step's
// shape (a batch of 1024 rows of 1024 features from a resident training set; smaller
// under Small) and for one-column rows, and that an index past the source's rows
// gives a row of NaN (a device cannot panic) without touching the other rows.
func (s *suite) gatherRows(t *testing.T) {
	tb := s.b
	r := rand.New(rand.NewSource(9))
	for _, sh := range [][3]int{{s.pick(4096, 300), s.pick(1024, 40), s.pick(1024, 64)}, {5000, 1, 777}} {
		rows, cols, n := sh[0], sh[1], sh[2]
		h := randn(r, rows*cols, 1)
		idx := make([]uint32, n)
		ih := make([]float32, n)
		for i := range idx {
			idx[i] = uint32(r.Intn(rows))
			if i == n/3 {
				idx[i] = uint32(rows) // one past the end
			}
			if i == n/2 {
				idx[i] = 1 << 31 // an index that is NaN as a float
			}
			ih[i] = nn.IndexBits(idx[i])
		}
		src, ix, dst := put(tb, h), put(tb, ih), tb.Alloc(n*cols)
		tb.GatherRows(dst, src, cols, ix, n)
		got := get(tb, dst)
		for i, v := range got {
			k := idx[i/cols]
			if k >= uint32(rows) {
				if !math.IsNaN(float64(v)) {
					t.Fatalf("%dx%d: row %d (index %d, past the end) holds %g, want NaN", rows, cols, i/cols, k, v)
				}
				continue
			}
			if want := h[int(k)*cols+i%cols]; math.Float32bits(v) != math.Float32bits(want) {
				t.Fatalf("%dx%d: dst[%d] = %g, want src[%d, %d] = %g", rows, cols, i, v, k, i%cols, want)
			}
		}
		tb.Free(src)
		tb.Free(ix)
		tb.Free(dst)
	}
}

func (s *suite) gemm(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	shapes := [][3]int{{67, 45, 129}, {1, 300, 7}, {256, 1000, 1024}, {33, 1, 1}}
	modes := s.o.GemmModes
	if len(modes) == 0 {
		modes = []GemmMode{{Name: "default", Tol: s.o.Tol, Set: func() {}}}
	}
	for _, mode := range modes {
		mode.Set()
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			a, bb, c0 := randn(r, m*k, 1), randn(r, k*n, 1), randn(r, m*n, 1)
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				for _, beta := range []float32{0, 0.5} {
					g, c := s.both(func(b nn.Backend) map[string][]float32 {
						A, B, C := put(b, a), put(b, bb), put(b, c0)
						b.Gemm(tr[0], tr[1], m, n, k, 1.25, A, B, beta, C)
						return map[string][]float32{"C": get(b, C)}
					})
					compare(t, fmt.Sprintf("%s %dx%dx%d t=%v beta=%g", mode.Name, m, n, k, tr, beta), g, c, mode.Tol)
				}
			}
		}
	}
	modes[0].Set()
}

func (s *suite) elementwise(t *testing.T) {
	tb := s.b
	r := rand.New(rand.NewSource(3))
	const rows, cols = 77, 300
	x, y, bias := randn(r, rows*cols, 1), randn(r, rows*cols, 1), randn(r, cols, 0.5)
	wide := randn(r, rows*500, 1)
	g, c := s.both(func(b nn.Backend) map[string][]float32 {
		out := map[string][]float32{}
		X, Y := put(b, x), put(b, y)
		b.Axpy(X, -0.75, Y, rows*cols-3)
		out["axpy"] = get(b, X)
		b.Scale(X, rows*cols, 1.5)
		out["scale"] = get(b, X)
		b.Mul(X, Y, 1000)
		out["mul"] = get(b, X)
		Z, B := put(b, y), put(b, bias)
		b.AddBiasLeakyReLU(Z, B, rows, cols, 0.01)
		out["bias+lrelu"] = get(b, Z)
		b.AddBiasLeakyReLU(Z, nil, rows, cols, 0.2)
		out["lrelu"] = get(b, Z)
		D := put(b, x)
		b.LeakyReLUBackward(D, Z, rows*cols, 0.01)
		out["lrelu backward"] = get(b, D)
		S := put(b, bias)
		b.ColSums(S, X, rows, cols, 1)
		out["colsums+"] = get(b, S)
		b.ColSums(S, Y, rows, cols, 0)
		out["colsums"] = get(b, S)
		W, K := put(b, wide), put(b, x)
		b.CopyCols(W, 500, 123, K, cols, 10, rows, 200, 0)
		out["copycols"] = get(b, W)
		b.CopyCols(K, cols, 50, W, 500, 0, rows, 250, 1)
		out["copycols+"] = get(b, K)
		F := b.Alloc(rows * 400)
		b.FoldCols(F, 400, W, 500, rows, 250) // columns 400..499 onto 250..349
		out["foldcols"] = get(b, F)
		b.UnfoldCols(W, 500, F, 400, rows, 250, 1)
		out["unfoldcols+"] = get(b, W)
		b.UnfoldCols(W, 500, F, 400, rows, 100, 0)
		out["unfoldcols"] = get(b, W)
		return out
	})
	compare(t, "elementwise", g, c, min(s.o.Tol, 1e-6))
	gd, cd := tb.Dot(put(tb, x), put(tb, y), rows*cols), cpu.Dot(put(cpu, x), put(cpu, y), rows*cols)
	if math.Abs(gd-cd) > 1e-12*math.Abs(cd) {
		t.Errorf("Dot: backend %v, CPU %v", gd, cd)
	}
}

func (s *suite) batchNorm(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	rows, cols := s.pick(1024, 300), 77
	x := randn(r, rows*cols, 3)
	for i := range x {
		x[i] += 5 // a mean far from 0 tests the shifted sums
	}
	dy, gamma, beta := randn(r, rows*cols, 1), randn(r, cols, 1), randn(r, cols, 1)
	runM, runV := randn(r, cols, 1), make([]float32, cols)
	for i := range runV {
		runV[i] = 1 + float32(i)/float32(cols)
	}
	g, c := s.both(func(b nn.Backend) map[string][]float32 {
		X, DY, G, Bt := put(b, x), put(b, dy), put(b, gamma), put(b, beta)
		RM, RV := put(b, runM), put(b, runV)
		st, mean, vr := b.Alloc(2*cols+1), b.Alloc(cols), b.Alloc(cols)
		b.BNStats(st, X, RM, rows, cols)
		stats := get(b, st)
		b.BNMoments(mean, vr, RM, RV, st, cols, 0.1)
		Y := b.Alloc(rows * cols)
		b.BNNormalize(Y, X, mean, vr, G, Bt, rows, cols, 1e-5)
		bst, dg, db := b.Alloc(2*cols+1), put(b, gamma), put(b, beta)
		b.BNBackwardStats(bst, dg, db, DY, X, mean, vr, rows, cols, 1e-5)
		bstats := get(b, bst)
		dgamma, dbeta := get(b, dg), get(b, db)
		DX := b.Alloc(rows * cols)
		b.BNBackward(DX, DY, X, mean, vr, G, bst, rows, cols, 1e-5, 0.2) // with a LeakyReLU derivative
		dxAct := get(b, DX)
		b.BNBackward(DY, DY, X, mean, vr, G, bst, rows, cols, 1e-5, 1) // dx aliases dy
		return map[string][]float32{"dx, LeakyReLU": dxAct, "stats": stats, "mean": get(b, mean), "var": get(b, vr),
			"runMean": get(b, RM), "runVar": get(b, RV), "y": get(b, Y), "bstats": bstats, "dx": get(b, DY),
			"dgamma accumulated": dgamma, "dbeta accumulated": dbeta}
	})
	compare(t, "batchnorm", g, c, s.o.Tol)
	if g["stats"][2*cols] != float32(rows) || g["bstats"][2*cols] != float32(rows) {
		t.Errorf("row count slots: %g %g", g["stats"][2*cols], g["bstats"][2*cols])
	}
}

func (s *suite) softmax(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	rows, cols := s.pick(300, 20), 1000
	x, lab, d0 := randn(r, rows*cols, 3), labels(r, rows, cols), randn(r, rows*cols, 1)
	for _, invT := range []float32{1, 0.5} {
		g, c := s.both(func(b nn.Backend) map[string][]float32 {
			X, L, D := put(b, x), put(b, lab), put(b, d0)
			loss := b.Alloc(rows)
			b.SoftmaxCE(loss, D, X, L, rows, cols, invT, 1/float32(rows), 1, nil)
			out := map[string][]float32{"loss": get(b, loss), "dx accumulated": get(b, D)}
			b.SoftmaxCE(nil, D, X, L, rows, cols, invT, -0.5, 0, nil)
			out["dx"] = get(b, D)
			// The scale from device memory; the NaN argument must be ignored.
			b.SoftmaxCE(nil, D, X, L, rows, cols, invT, float32(math.NaN()), 1, put(b, []float32{0.37}))
			out["dx, scale in device memory"] = get(b, D)
			b.Softmax(X, X, rows, cols, invT) // in place
			out["softmax"] = get(b, X)
			return out
		})
		compare(t, fmt.Sprintf("softmax invT=%g", invT), g, c, s.o.Tol)
	}
}

func (s *suite) choices(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	rows, cols := s.pick(513, 30), 1000
	x := randn(r, rows*cols, 2)
	// Plant ties: the first maximum must win on both.
	for row := 0; row < rows; row += 7 {
		x[row*cols+3], x[row*cols+900] = 50, 50
	}
	idx := make([]uint32, rows)
	for i := range idx {
		idx[i] = uint32(r.Int31())
	}
	key := nn.RNGKey{Seed: 0xfeedface12345678, Step: 42, Stream: 1}
	ib := make([]float32, rows)
	for i, v := range idx {
		ib[i] = nn.IndexBits(v)
	}
	g, c := s.both(func(b nn.Backend) map[string][]float32 {
		X, out, I := put(b, x), b.Alloc(rows), put(b, ib)
		res := map[string][]float32{}
		b.Argmax(out, X, rows, cols)
		res["argmax"] = get(b, out)
		b.SampleGumbel(out, X, rows, cols, 0.5, key, I, nil)
		res["gumbel"] = get(b, out)
		b.SampleGumbel(out, X, rows, cols, 1, nn.RNGKey{Seed: 1, Step: 2, Stream: 0}, I, nil)
		res["gumbel2"] = get(b, out)
		// The RNG step from device memory (key.Step ignored), beyond 2^24.
		step := put(b, []float32{nn.IndexBits(1<<30 + 3)})
		b.SampleGumbel(out, X, rows, cols, 1, nn.RNGKey{Seed: 1, Step: 2, Stream: 0}, I, step)
		res["gumbel, step in device memory"] = get(b, out)
		m := b.Alloc(rows * 300)
		b.DropoutMask(m, rows, 300, 0.3, nn.RNGKey{Seed: 9, Step: 3, Stream: nn.StreamDropout + 1}, 1000, nil)
		res["dropout"] = get(b, m)
		b.DropoutMask(m, rows, 300, 0.3, nn.RNGKey{Seed: 9, Step: 3, Stream: nn.StreamDropout + 1}, 1000, step)
		res["dropout, step in device memory"] = get(b, m)
		return res
	})
	compare(t, "choices", g, c, 0)
}

// scalars checks the operations that leave their result on the device (the MCT
// step's scalars) and the fused leave-one-out ensemble: float results within
// Tol (they are float64 sums rounded once), counts and MeanOthers exactly.
func (s *suite) scalars(t *testing.T) {
	r := rand.New(rand.NewSource(10))
	n := s.pick(300007, 20011) // several grid-stride rounds and partial blocks
	x, y := randn(r, n, 1), randn(r, n, 2)
	rows := s.pick(1024, 100)
	loss := randn(r, rows, 1)
	for i := range loss {
		loss[i] = float32(math.Abs(float64(loss[i])))
	}
	views, cols := 3, s.pick(1024, 300)
	truth := labels(r, cols, 10)
	guess := labels(r, views*cols, 10)
	for i := range guess {
		if r.Intn(2) == 0 {
			guess[i] = truth[i%cols]
		}
	}
	g, c := s.both(func(b nn.Backend) map[string][]float32 {
		X, Y, L, sc := put(b, x), put(b, y), put(b, loss), b.Alloc(4)
		b.DotTo(b.View(sc, 0, 1), X, Y, n)
		b.Mean(b.View(sc, 1, 1), L, rows)
		out := map[string][]float32{}
		// Above the norm: no scaling; below it: scaled.
		b.ClipNorm(Y, n, 1e9, b.View(sc, 2, 1))
		out["unclipped"] = get(b, Y)
		b.ClipNorm(Y, n, 3, b.View(sc, 3, 1))
		out["clipped"] = get(b, Y)
		b.ClipNorm(X, n-1, 0.5, nil)
		out["clipped, no norm"] = get(b, X)
		all := get(b, sc)
		for i, k := range []string{"dot", "mean", "norm", "norm of the scaled"} {
			out[k] = all[i : i+1] // each against its own scale
		}
		T, G, hits := put(b, truth), put(b, guess), b.Alloc(views)
		b.CountEqual(hits, G, T, views, cols)
		out["hits"] = get(b, hits)
		for _, v := range []int{2, 3, 4} {
			src, dst := put(b, randn(rand.New(rand.NewSource(int64(v))), v*rows*7, 1)), b.Alloc(v*rows*7)
			b.MeanOthers(dst, src, v, rows*7)
			out[fmt.Sprintf("mean of others, %d views", v)] = get(b, dst)
		}
		return out
	})
	exactG, exactC := map[string][]float32{}, map[string][]float32{}
	for k := range c {
		if k == "hits" || strings.HasPrefix(k, "mean of others") {
			exactG[k], exactC[k] = g[k], c[k]
			delete(g, k)
			delete(c, k)
		}
	}
	compare(t, "scalars", g, c, s.o.Tol)
	compare(t, "exact", exactG, exactC, 0)
}

func (s *suite) adam(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	const n = 100003
	w := randn(r, n, 1)
	g, c := s.both(func(b nn.Backend) map[string][]float32 {
		W, M, V := put(b, w), b.Alloc(n), b.Alloc(n)
		rr := rand.New(rand.NewSource(8))
		for step := 1; step <= 4; step++ {
			G := put(b, randn(rr, n, 0.1))
			bc1, bc2 := 1-math.Pow(0.9, float64(step)), 1-math.Pow(0.999, float64(step))
			h := nn.AdamHyper{StepSize: float32(1e-3 / bc1), Beta1: 0.9, Beta2: 0.999,
				Eps: 1e-8, WeightDecay: 0.01, BC2Sqrt: float32(math.Sqrt(bc2)), OneMinusBeta1: 0.1, OneMinusBeta2: 0.001}
			var sched nn.Buf
			if step%2 == 0 { // the per-step scalars from device memory
				sched = put(b, []float32{h.StepSize, h.BC2Sqrt})
				h.StepSize, h.BC2Sqrt = float32(math.NaN()), float32(math.NaN())
			}
			b.Adam(W, G, M, V, n, h, sched)
			b.Free(G)
		}
		return map[string][]float32{"w": get(b, W), "m": get(b, M), "v": get(b, V)}
	})
	compare(t, "adam", g, c, min(s.o.Tol, 1e-6))
}

// probe runs a probe's forward, loss, backward, clipping and Adam step on
// both backends from the same seed, as one MCT student step does.
func (s *suite) probe(t *testing.T) {
	cases := []nn.Config{
		{Arch: "fcnn", In: 50, Classes: 10, Hidden: []int{64, 64, 64}, Temperature: 2},
		{Arch: "fcnn", In: 50, Classes: 10, Hidden: []int{32, 32, 32, 32}, Dropout: 0.2},
		{Arch: "mlp", In: 40, Classes: 7, Hidden: []int{48, 24}},
		{Arch: "linear", In: 30, Classes: 5},
	}
	for _, cfg := range cases {
		t.Run(fmt.Sprintf("%s%v-drop%g", cfg.Arch, cfg.Hidden, cfg.Dropout), func(t *testing.T) {
			r := rand.New(rand.NewSource(9))
			const rows = 37
			x, lab := randn(r, rows*cfg.In, 1), labels(r, rows, cfg.Classes)
			g, c := s.both(func(b nn.Backend) map[string][]float32 {
				p, err := nn.NewProbe(b, cfg, 1234)
				if err != nil {
					t.Fatal(err)
				}
				out := map[string][]float32{"init": get(b, p.Flat())}
				tape, grads := p.NewTape(rows, true), p.NewGrads()
				X, L := put(b, x), put(b, lab)
				logits := p.Forward(tape, X, rows, nn.Train)
				out["logits"] = get(b, logits)
				d := b.Alloc(rows * cfg.Classes)
				loss := nn.CrossEntropy(b, logits, rows, cfg.Classes, L, d, 1)
				out["loss"] = []float32{loss}
				grads.Zero()
				p.Backward(tape, d, grads)
				out["grads"] = get(b, grads.Flat())
				norm := nn.ClipGradNorm(b, grads, 0.5)
				out["norm"] = []float32{norm}
				opt := nn.NewAdam(p, 1e-2)
				opt.Step(grads)
				out["params"] = get(b, p.Flat())
				// Backward again through the kept weights: equal to the first.
				grads.Zero()
				p.Backward(tape, d, grads)
				out["grads at old weights"] = get(b, grads.Flat())
				eval := p.NewTape(rows, false)
				out["eval logits"] = get(b, p.Forward(eval, X, rows, nn.Eval))
				for i, q := range p.Buffers() {
					out[fmt.Sprintf("buffer %d %s", i, q.Name)] = get(b, q.W)
				}
				return out
			})
			compare(t, "probe", g, c, s.o.Tol)
			if g["loss"][0] <= 0 {
				t.Errorf("loss %g", g["loss"][0])
			}
		})
	}
}
