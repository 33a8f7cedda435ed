package nntest

import (
	"fmt"
	"math"
	"testing"

	"mct/nn"
)

// memory checks Alloc, Upload, Download, Copy, Fill and Free through Views at offsets
// against plain expectations, bit for bit.
func (s *suite) memory(t *testing.T) {
	b := s.b
	h := randn(rng(1), 1000, 1)
	x, y := b.Alloc(1000), b.Alloc(1000)
	defer b.Free(x)
	defer b.Free(y)
	same(t, "Alloc", "expected", get(b, y), make([]float32, 1000), exact)
	b.Upload(x, h)
	v := b.View(x, 300, 500)
	if v.Len() != 500 {
		t.Fatalf("View(x, 300, 500).Len() = %d, want 500", v.Len())
	}
	b.Copy(b.View(y, 100, 500), v, 500)
	b.Fill(b.View(y, 10, 50), 40, -2.5)
	b.Upload(b.View(y, 900, 3), []float32{7, 8, 9})
	b.Free(b.View(x, 0, 10)) // a no-op
	b.Sync()
	want := make([]float32, 1000)
	for i := 10; i < 50; i++ {
		want[i] = -2.5
	}
	copy(want[100:600], h[300:800])
	copy(want[900:], []float32{7, 8, 9})
	same(t, "Copy, Fill and Upload through Views", "expected", get(b, y), want, exact)
	part := make([]float32, 10)
	b.Download(part, b.View(x, 990, 10))
	same(t, "Download of a View", "expected", part, h[990:], exact)
	same(t, "a buffer after Free of a View of it", "expected", get(b, x), h, exact)
}

// gatherRows checks GatherRows against a plain loop, bit for bit: rows picked with
// repeats, the first and the last, from a View into a View between guard values (as the
// MCT step gathers into its input buffer), at the MCT step's shape and for one-column
// rows (labels). Small indices are denormal as float32 and large ones NaN, so a backend
// that read them as floats, or flushed denormals, fails; so does one that loses -0 or a
// NaN payload of the source.
func (s *suite) gatherRows(t *testing.T) {
	b, r := s.b, rng(2)
	for _, sh := range [][3]int{{40, 1, 57}, {40, 7, 57}, {40, 300, 57}, {5000, 1, 777},
		{s.pick(4096, 300), s.pick(1024, 40), s.pick(1024, 64)}} {
		rows, cols, n := sh[0], sh[1], sh[2]
		const off, pad = 3, 5 // source rows start at a View's offset; destination rows after pad guard rows
		host := randn(r, (rows+off)*cols, 1)
		host[off*cols] = float32(math.Copysign(0, -1))
		host[len(host)-1] = math.Float32frombits(0x7fc0beef)
		idx := make([]uint32, n)
		for i := range idx {
			idx[i] = uint32(r.IntN(rows))
		}
		idx[0], idx[n-1], idx[n/2] = 0, uint32(rows-1), idx[1]
		src, ib, dst := b.Alloc(len(host)), b.Alloc(n+2), b.Alloc((n+pad)*cols+1)
		b.Upload(src, host)
		b.Upload(b.View(ib, 2, n), indexBits(idx))
		b.Fill(dst, dst.Len(), 9)
		b.GatherRows(b.View(dst, pad*cols, n*cols), b.View(src, off*cols, rows*cols), cols, b.View(ib, 2, n), n)
		b.GatherRows(dst, src, cols, ib, 0) // no rows: nothing written
		want := make([]float32, dst.Len())
		for i := range want {
			want[i] = 9
			if row := i/cols - pad; row >= 0 && row < n {
				want[i] = host[(off+int(idx[row]))*cols+i%cols]
			}
		}
		same(t, fmt.Sprintf("GatherRows %d of %d rows of %d", n, rows, cols), "expected", get(b, dst), want, exact)
		b.Free(src)
		b.Free(ib)
		b.Free(dst)
	}
	for _, cols := range []int{1, 6} {
		s.gatherOutside(t, cols)
	}
}

// gatherOutside gives GatherRows an index one row past a View's end (where the parent
// buffer still has data) and one that is NaN as a float: the backend must panic (a host
// backend) or fill those rows with NaN and gather the others (a device, which cannot).
func (s *suite) gatherOutside(t *testing.T, cols int) {
	b, r := s.b, rng(3)
	const rows, n = 50, 20
	host := randn(r, (rows+2)*cols, 1)
	idx := make([]uint32, n)
	for i := range idx {
		idx[i] = uint32(r.IntN(rows))
	}
	idx[5], idx[11] = rows, 1<<31
	src, ib, dst := b.Alloc(len(host)), b.Alloc(n), b.Alloc(n*cols)
	defer b.Free(src)
	defer b.Free(ib)
	defer b.Free(dst)
	b.Upload(src, host)
	b.Upload(ib, indexBits(idx))
	panicked := func() (p any) {
		defer func() { p = recover() }()
		b.GatherRows(dst, b.View(src, 0, rows*cols), cols, ib, n)
		return nil
	}()
	if panicked != nil {
		return
	}
	got := get(b, dst)
	for i, v := range got {
		k := idx[i/cols]
		if k >= rows {
			if !math.IsNaN(float64(v)) {
				t.Fatalf("GatherRows, %d columns: row %d (index %d, outside %d rows) holds %g, want NaN (or a panic)",
					cols, i/cols, k, rows, v)
			}
		} else if want := host[int(k)*cols+i%cols]; math.Float32bits(v) != math.Float32bits(want) {
			t.Fatalf("GatherRows, %d columns, with rows outside: dst[%d] = %g, want %g", cols, i, v, want)
		}
	}
}

// gemm checks every transpose at shapes from 1×1×1 to an MCT layer, with β = 0 over a C
// of NaN (which must be ignored), β = 1 (accumulation) and β = 0.5, in each GEMM mode.
func (s *suite) gemm(t *testing.T) {
	r := rng(4)
	shapes := [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {67, 45, 129}, {128, 96, 200}, {1, 300, 7}, {33, 1, 1}}
	if !s.o.Small {
		shapes = append(shapes, [3]int{256, 1000, 1024})
	}
	for _, mode := range s.o.GemmModes {
		mode.Set()
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			a, bb := randn(r, m*k, 1), randn(r, k*n, 1)
			for _, beta := range []float32{0, 1, 0.5} {
				c0 := randn(r, m*n, 1)
				if beta == 0 {
					for i := range c0 {
						c0[i] = float32(math.NaN())
					}
				}
				for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
					s.both(t, func(d *side) {
						c := d.put(c0)
						d.Gemm(tr[0], tr[1], m, n, k, 1.25, d.put(a), d.put(bb), beta, c)
						d.keep(fmt.Sprintf("%s Gemm tA=%v tB=%v %dx%dx%d β=%g", mode.Name, tr[0], tr[1], m, n, k, beta),
							mode.Tol, c)
					})
				}
			}
		}
		s.gemmStrided(t, mode)
	}
	s.o.GemmModes[0].Set()
}

// gemmStrided checks GemmStrided on blocks of larger matrices, as Backward uses it (a
// weight's column block as B, from an offset; a gradient's column block as C): every
// stride longer than its row, β = 0 over NaN and β = 1, and the elements between the
// rows left as they were; and k = 0, which only scales C's block.
func (s *suite) gemmStrided(t *testing.T, mode GemmMode) {
	r := rng(5)
	for _, sh := range [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {67, 45, 129}, {5, 4, 0}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			rowsA, colsA, rowsB, colsB := m, k, k, n
			if tr[0] {
				rowsA, colsA = k, m
			}
			if tr[1] {
				rowsB, colsB = n, k
			}
			lda, ldb, ldc, offB := colsA+3, colsB+5, n+4, 2
			a, bb := randn(r, rowsA*lda, 1), randn(r, offB+rowsB*ldb, 1)
			bLen := 0 // B's elements from its offset: none when it has no rows (k = 0)
			if rowsB > 0 {
				bLen = (rowsB-1)*ldb + colsB
			}
			for _, beta := range []float32{0, 1} {
				c0 := randn(r, m*ldc, 1)
				if beta == 0 {
					for i := range c0 {
						if i%ldc < n {
							c0[i] = float32(math.NaN())
						}
					}
				}
				s.both(t, func(d *side) {
					c := d.put(c0)
					d.GemmStrided(tr[0], tr[1], m, n, k, 1.25, d.put(a), lda,
						d.View(d.put(bb), offB, bLen), ldb, beta, c, ldc)
					d.keep(fmt.Sprintf("%s GemmStrided tA=%v tB=%v %dx%dx%d β=%g", mode.Name, tr[0], tr[1], m, n, k, beta),
						mode.Tol, c)
				})
			}
		}
	}
}

// elementwise checks the element-by-element operations on lengths that end inside a
// block, LeakyReLU's derivative at exact zeros of its output (+0 and -0 take the
// slope, as in PyTorch), and ColSums with and without accumulation.
func (s *suite) elementwise(t *testing.T) {
	r := rng(5)
	const rows, cols, n = 77, 300, 77 * 300
	x, y, bias := randn(r, n, 1), randn(r, n, 1), randn(r, cols, 0.5)
	for i := 0; i < n; i += 97 {
		y[i] = 0
	}
	y[5] = float32(math.Copysign(0, -1))
	sums := [][2]int{{300, 70}, {77, 300}}
	mats, sums0 := make([][]float32, len(sums)), make([][]float32, len(sums))
	for i, sh := range sums {
		mats[i], sums0[i] = randn(r, sh[0]*sh[1], 2), randn(r, sh[1], 1)
	}
	s.both(t, func(d *side) {
		X, Y := d.put(x), d.put(y)
		d.Axpy(X, -0.75, Y, n-1)
		d.keep("Axpy", tight, X)
		d.Scale(X, n-2, 1.5)
		d.keep("Scale", tight, X)
		d.Mul(X, Y, n-3)
		d.keep("Mul", tight, X)
		Z := d.put(x)
		d.AddBiasLeakyReLU(Z, d.put(bias), rows, cols, 0.01)
		d.keep("AddBiasLeakyReLU", tight, Z)
		d.AddBiasLeakyReLU(Z, nil, rows, cols, 0.2)
		d.keep("AddBiasLeakyReLU without bias", tight, Z)
		for _, slope := range []float32{0.01, 0.2} {
			D := d.put(x)
			d.LeakyReLUBackward(D, D, Y, n, slope)
			d.keep(fmt.Sprintf("LeakyReLUBackward(slope %g)", slope), tight, D)
		}
		D, DX := d.put(x), d.alloc(n)
		d.LeakyReLUBackward(DX, D, Y, n-5, 0.2)
		d.keep("LeakyReLUBackward out of place", tight, DX)
		d.keep("LeakyReLUBackward out of place leaves dy", exact, D)
		for i, sh := range sums {
			S, M := d.put(sums0[i]), d.put(mats[i])
			for _, beta := range []float32{1, 0} {
				d.ColSums(S, M, sh[0], sh[1], beta)
				d.keep(fmt.Sprintf("ColSums %dx%d β=%g", sh[0], sh[1], beta), tight, S)
			}
		}
	})
}

// columns checks the column-block moves of the fcnn's concatenations, bit for bit:
// CopyCols into narrower and wider matrices and within one buffer (Backward's repeat of
// a folded weight's gradient), FoldCols with the repeated block last (the fcnn) and in
// the middle, UnfoldCols accumulating and not.
func (s *suite) columns(t *testing.T) {
	r := rng(6)
	const rows = 37
	type cp struct{ dstCols, dstOff, srcCols, srcOff, cols int }
	copies := []cp{{11, 4, 9, 2, 6}, {500, 123, 300, 10, 200}, {300, 50, 500, 0, 250}}
	folds := [][3]int{{6, 12, 0}, {18, 24, 12}, {400, 500, 250}} // dstCols, srcCols, off
	var in [][]float32
	for _, c := range copies {
		in = append(in, randn(r, rows*c.dstCols, 1), randn(r, rows*c.srcCols, 1))
	}
	for _, f := range folds {
		in = append(in, randn(r, rows*f[1], 1))
	}
	within := []cp{{12, 8, 12, 4, 4}, {768, 512, 768, 256, 256}, {300, 100, 300, 0, 100}} // one buffer
	for _, c := range within {
		in = append(in, randn(r, rows*c.dstCols, 1))
	}
	s.both(t, func(d *side) {
		for i, c := range copies {
			dst, src := d.put(in[2*i]), d.put(in[2*i+1])
			for _, beta := range []float32{0, 1} {
				d.CopyCols(dst, c.dstCols, c.dstOff, src, c.srcCols, c.srcOff, rows, c.cols, beta)
				d.keep(fmt.Sprintf("CopyCols %+v β=%g", c, beta), exact, dst)
			}
		}
		for i, c := range within {
			m := d.put(in[2*len(copies)+len(folds)+i])
			for _, beta := range []float32{0, 1} {
				d.CopyCols(m, c.dstCols, c.dstOff, m, c.srcCols, c.srcOff, rows, c.cols, beta)
				d.keep(fmt.Sprintf("CopyCols within one buffer %+v β=%g", c, beta), exact, m)
			}
		}
		for i, f := range folds {
			w, eff := d.put(in[2*len(copies)+i]), d.alloc(rows*f[0])
			d.FoldCols(eff, f[0], w, f[1], rows, f[2])
			d.keep(fmt.Sprintf("FoldCols %d of %d columns, off %d", f[0], f[1], f[2]), exact, eff)
			for _, beta := range []float32{1, 0} {
				d.UnfoldCols(w, f[1], eff, f[0], rows, f[2], beta)
				d.keep(fmt.Sprintf("UnfoldCols %d of %d columns, off %d, β=%g", f[1], f[0], f[2], beta), exact, w)
			}
		}
	})
}

// scalars checks the reductions the MCT step leaves on the device (DotTo, Mean,
// ClipNorm's norm: float64 sums rounded once) over lengths that take several rounds of
// a grid-stride loop, clipping and not clipping, Dot's float64 sum, and the exact
// operations CountEqual and MeanOthers.
func (s *suite) scalars(t *testing.T) {
	r := rng(7)
	n := s.pick(300007, 20011)
	x, y := randn(r, n, 1), randn(r, n, 2)
	loss := randn(r, s.pick(1024, 100), 1)
	for i := range loss {
		loss[i] = float32(math.Abs(float64(loss[i])))
	}
	const views = 3
	cnt := s.pick(1024, 300)
	truth, guess := labels(r, cnt, 10), labels(r, views*cnt, 10)
	for i := range guess {
		if r.IntN(2) == 0 {
			guess[i] = truth[i%cnt]
		}
	}
	others := s.pick(7*1024, 1111)
	ens := randn(r, 5*others, 2)
	var dots []float64
	s.both(t, func(d *side) {
		X, Y, L, sc := d.put(x), d.put(y), d.put(loss), d.alloc(9)
		dots = append(dots, d.Dot(X, Y, n-3))
		d.DotTo(d.View(sc, 0, 1), X, Y, n-3)
		d.Mean(d.View(sc, 1, 1), L, len(loss)-5)
		d.ClipCoef(d.View(sc, 5, 1), Y, n-7, 1e9, nil)
		d.ClipCoef(d.View(sc, 6, 1), Y, n-7, 3, d.View(sc, 7, 1))
		d.keep("ClipCoef leaves x", exact, Y)
		d.ClipNorm(Y, n-7, 1e9, d.View(sc, 2, 1))
		d.keep("ClipNorm above the norm (no scaling)", exact, Y)
		d.ClipNorm(Y, n-7, 3, d.View(sc, 3, 1))
		d.keep("ClipNorm(3)", tight, Y)
		d.ClipNorm(Y, n-7, 1e9, d.View(sc, 4, 1))
		d.ClipNorm(X, n-1, 0.5, nil)
		d.keep("ClipNorm without norm", tight, X)
		sv := get(d, sc)
		for i, name := range []string{"DotTo", "Mean", "ClipNorm's norm", "ClipNorm(3)'s norm", "the norm after ClipNorm(3)",
			"ClipCoef above the norm", "ClipCoef(3)", "ClipCoef(3)'s norm"} {
			tol := tight // each against its own scale
			if i == 5 {
				tol = exact // 1
			}
			d.keepHost(name, tol, sv[i])
		}
		d.keepHost("ClipCoef(3)'s norm is ClipNorm(3)'s", exact, sv[7]-sv[3])
		hits := d.alloc(views)
		d.CountEqual(hits, d.put(guess), d.put(truth), views, cnt)
		d.keep("CountEqual", exact, hits)
		E := d.put(ens)
		for v := 2; v <= 5; v++ {
			dst := d.alloc(v * others)
			d.MeanOthers(dst, E, v, others)
			d.keep(fmt.Sprintf("MeanOthers(%d views)", v), exact, dst)
		}
	})
	// A float64 sum of exact float32 products: any order is within n·2⁻⁵³ of Σ|x·y|;
	// a float32 accumulation is off by about 1e-7 of it.
	var abs float64
	for i := range n - 3 {
		abs += math.Abs(float64(x[i]) * float64(y[i]))
	}
	if math.Abs(dots[0]-dots[1]) > 1e-12*abs {
		t.Errorf("Dot = %.17g, CPU backend %.17g (error %.2e > 1e-12 × Σ|x·y| %.4g)", dots[0], dots[1],
			math.Abs(dots[0]-dots[1]), abs)
	}
}

// batchNorm checks the training-mode BatchNorm pieces on columns whose mean is far from
// zero (where E[x²]−E[x]² would cancel without the shift), the running statistics, the
// row-count slots (exact), normalizing out of place and in place, the backward sums with
// and without the affine gradients, and BNBackward with the LeakyReLU derivative and in
// place.
func (s *suite) batchNorm(t *testing.T) {
	r := rng(8)
	rows, cols := s.pick(1024, 300), 77
	x := randn(r, rows*cols, 3)
	for i := range x {
		x[i] += 5
	}
	dy, gamma, beta := randn(r, rows*cols, 1), randn(r, cols, 1), randn(r, cols, 1)
	runM, runV := randn(r, cols, 1), make([]float32, cols)
	for i := range runV {
		runV[i] = 1 + float32(i)/float32(cols)
	}
	s.both(t, func(d *side) {
		X, DY, G, Bt, RM, RV := d.put(x), d.put(dy), d.put(gamma), d.put(beta), d.put(runM), d.put(runV)
		st, mean, vr, y := d.alloc(2*cols+1), d.alloc(cols), d.alloc(cols), d.alloc(rows*cols)
		d.BNStats(st, X, RM, rows, cols)
		d.keep("BNStats", loose, d.View(st, 0, 2*cols))
		d.keep("BNStats row count", exact, d.View(st, 2*cols, 1))
		d.BNMoments(mean, vr, RM, RV, st, cols, 0.1)
		d.keep("BNMoments mean", loose, mean)
		d.keep("BNMoments var", loose, vr)
		d.keep("BNMoments running mean", loose, RM)
		d.keep("BNMoments running var", loose, RV)
		d.BNNormalize(y, cols, X, mean, vr, G, Bt, rows, cols, 1e-5)
		d.keep("BNNormalize", loose, y)
		// Into the middle column block of a matrix 2·cols+3 wide, as the fcnn writes its
		// hidden outputs side by side: the other columns must stay as they were.
		wide := d.put(randn(rng(8), rows*(2*cols+3), 1))
		d.BNNormalize(d.View(wide, cols+1, (rows-1)*(2*cols+3)+cols), 2*cols+3, X, mean, vr, G, Bt, rows, cols, 1e-5)
		d.keep("BNNormalize into a column block", loose, wide)
		Xc := d.put(x)
		d.BNNormalize(Xc, cols, Xc, RM, RV, G, Bt, rows, cols, 1e-3)
		d.keep("BNNormalize in place, running statistics", loose, Xc)
		dg, db := d.put(gamma), d.put(beta)
		d.BNBackwardStats(st, dg, db, DY, X, mean, vr, rows, cols, 1e-5, 1)
		d.keep("BNBackwardStats", loose, d.View(st, 0, 2*cols))
		d.keep("BNBackwardStats row count", exact, d.View(st, 2*cols, 1))
		d.keep("BNBackwardStats dγ accumulated", loose, dg)
		d.keep("BNBackwardStats dβ accumulated", loose, db)
		nan := make([]float32, cols)
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		dg0, db0 := d.put(nan), d.put(nan)
		d.BNBackwardStats(d.alloc(2*cols+1), dg0, db0, DY, X, mean, vr, rows, cols, 1e-5, 0)
		d.keep("BNBackwardStats dγ written over NaN (β = 0 does not read)", loose, dg0)
		d.keep("BNBackwardStats dβ written over NaN", loose, db0)
		bst := d.alloc(2*cols + 1)
		d.BNBackwardStats(bst, nil, nil, DY, X, mean, vr, rows, cols, 1e-5, 1)
		d.keep("BNBackwardStats without affine gradients", loose, bst)
		dx := d.alloc(rows * cols)
		d.BNBackward(dx, DY, X, mean, vr, G, st, rows, cols, 1e-5, 0.2)
		d.keep("BNBackward with a LeakyReLU(0.2) derivative", loose, dx)
		d.BNBackward(DY, DY, X, mean, vr, G, st, rows, cols, 1e-5, 1)
		d.keep("BNBackward in place", loose, DY)
	})
}

// softmax checks SoftmaxCE (loss and gradient, accumulated and not, without the loss,
// with its scale read from device memory while the argument is NaN) and Softmax (out of
// place and in place), on few classes and on rows longer than a block.
func (s *suite) softmax(t *testing.T) {
	r := rng(9)
	for _, c := range []struct {
		rows, cols int
		invT       float32
	}{{s.pick(200, 24), 10, 0.5}, {s.pick(300, 20), 1000, 1}} {
		rows, cols, invT := c.rows, c.cols, c.invT
		x, lab, d0 := randn(r, rows*cols, 3), labels(r, rows, cols), randn(r, rows*cols, 1)
		name := fmt.Sprintf("%dx%d, 1/T = %g", rows, cols, invT)
		s.both(t, func(d *side) {
			X, L, D, loss := d.put(x), d.put(lab), d.put(d0), d.alloc(rows)
			d.SoftmaxCE(loss, D, X, L, rows, cols, invT, 1/float32(rows), 1, nil)
			d.keep("SoftmaxCE loss "+name, loose, loss)
			d.keep("SoftmaxCE dx accumulated "+name, loose, D)
			d.SoftmaxCE(nil, D, X, L, rows, cols, invT, -0.5, 0, nil)
			d.keep("SoftmaxCE dx without loss "+name, loose, D)
			d.SoftmaxCE(nil, D, X, L, rows, cols, invT, float32(math.NaN()), 1, d.put([]float32{0.0123}))
			d.keep("SoftmaxCE dx, scale in device memory "+name, loose, D)
			y := d.alloc(rows * cols)
			d.Softmax(y, X, rows, cols, 2*invT)
			d.keep("Softmax "+name, loose, y)
			d.Softmax(X, X, rows, cols, invT)
			d.keep("Softmax in place "+name, loose, X)
		})
	}
}

// choices checks the results that are decisions, bit for bit: Argmax with planted ties
// (the first maximum wins), Gumbel-max samples and dropout masks from the counter RNG
// with the step as an argument and from device memory (beyond float32's exact integers),
// for row indices over all of uint32 (NaN bit patterns as floats included).
func (s *suite) choices(t *testing.T) {
	r := rng(10)
	for _, sh := range [][2]int{{s.pick(2000, 64), 10}, {s.pick(513, 30), 1000}} {
		rows, cols := sh[0], sh[1]
		x := randn(r, rows*cols, 2)
		for row := 0; row < rows; row += 7 {
			x[row*cols+1], x[row*cols+cols-1] = 50, 50
		}
		idx := make([]uint32, rows)
		for i := range idx {
			idx[i] = r.Uint32()
		}
		name := fmt.Sprintf("%dx%d", rows, cols)
		s.both(t, func(d *side) {
			X, I, out := d.put(x), d.put(indexBits(idx)), d.alloc(rows)
			step := d.put([]float32{nn.IndexBits(1<<31 + 7)})
			d.Argmax(out, X, rows, cols)
			d.keep("Argmax "+name, exact, out)
			d.SampleGumbel(out, X, rows, cols, 0.5, nn.RNGKey{Seed: 0xfeedface12345678, Step: 42, Stream: 1}, I, nil)
			d.keep("SampleGumbel "+name, exact, out)
			d.SampleGumbel(out, X, rows, cols, 1, nn.RNGKey{Seed: 99, Step: 2, Stream: 0}, I, step)
			d.keep("SampleGumbel, step in device memory "+name, exact, out)
		})
	}
	for _, sh := range [][2]int{{129, 77}, {s.pick(513, 30), 300}} {
		rows, cols := sh[0], sh[1]
		name := fmt.Sprintf("%dx%d", rows, cols)
		s.both(t, func(d *side) {
			m, step := d.alloc(rows*cols), d.put([]float32{nn.IndexBits(1<<31 + 7)})
			key := nn.RNGKey{Seed: 9, Step: 3, Stream: nn.StreamDropout + 1}
			d.DropoutMask(m, rows, cols, 0.35, key, 1000, nil)
			d.keep("DropoutMask "+name, exact, m)
			d.DropoutMask(m, rows, cols, 0.35, key, 1000, step)
			d.keep("DropoutMask, step in device memory "+name, exact, m)
		})
	}
}

// adam checks four Adam steps with weight decay and a fresh gradient each, every other
// one with its scalars read from device memory (the arguments then NaN), the last two
// with the gradient scaled by a device factor (gscale), and that the gradient is left
// as it was. A scaled step must give the bits of the step after ClipNorm's scaling,
// on each backend.
func (s *suite) adam(t *testing.T) {
	r := rng(11)
	const n = 100003
	w := randn(r, n, 1)
	var g [4][]float32
	for i := range g {
		g[i] = randn(r, n, 0.1)
	}
	s.both(t, func(d *side) {
		W, M, V := d.put(w), d.alloc(n), d.alloc(n)
		// The same steps with the gradient clipped in place first, for the scaled ones.
		Wc, Mc, Vc := d.put(w), d.alloc(n), d.alloc(n)
		k := d.alloc(1)
		for step := 1; step <= 4; step++ {
			G := d.put(g[step-1])
			bc1, bc2 := 1-math.Pow(0.9, float64(step)), 1-math.Pow(0.999, float64(step))
			h := nn.AdamHyper{StepSize: float32(1e-3 / bc1), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01,
				BC2Sqrt: float32(math.Sqrt(bc2)), OneMinusBeta1: 0.1, OneMinusBeta2: 0.001}
			var sched, gscale nn.Buf
			if step%2 == 0 {
				sched = d.put([]float32{h.StepSize, h.BC2Sqrt})
				h.StepSize, h.BC2Sqrt = float32(math.NaN()), float32(math.NaN())
			}
			Gc := d.put(g[step-1])
			if step > 2 {
				d.ClipCoef(k, G, n, 2, nil)
				d.ClipNorm(Gc, n, 2, nil)
				gscale = k
			}
			d.Adam(W, G, M, V, n, h, sched, gscale)
			d.keep(fmt.Sprintf("Adam step %d leaves g", step), exact, G)
			d.Adam(Wc, Gc, Mc, Vc, n, h, sched, nil)
		}
		d.keep("clipping factor", tight, k)
		d.keep("Adam w", tight, W)
		d.keep("Adam m", tight, M)
		d.keep("Adam v", tight, V)
		for _, p := range [][2]nn.Buf{{W, Wc}, {M, Mc}, {V, Vc}} {
			d.Axpy(p[0], -1, p[1], n)
		}
		d.keep("Adam w with gscale − w after ClipNorm (0)", exact, W)
		d.keep("Adam m with gscale − m after ClipNorm (0)", exact, M)
		d.keep("Adam v with gscale − v after ClipNorm (0)", exact, V)
	})
}
