//go:build cuda

package cudaops

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"gorgonia.org/cu"

	"mct/nn"
)

func (b *Backend) Gemm(tA, tB bool, m, n, k int, alpha float32, a, bb nn.Buf, beta float32, c nn.Buf) {
	lda, ldb := nn.PackedLD(tA, tB, m, n, k)
	b.GemmStrided(tA, tB, m, n, k, alpha, a, lda, bb, ldb, beta, c, max(n, 1))
}

func (b *Backend) GemmStrided(tA, tB bool, m, n, k int, alpha float32, a nn.Buf, lda int, bb nn.Buf, ldb int, beta float32, c nn.Buf, ldc int) {
	rowsA, colsA, rowsB, colsB := m, k, k, n
	if tA {
		rowsA, colsA = k, m
	}
	if tB {
		rowsB, colsB = n, k
	}
	if lda < max(colsA, 1) || ldb < max(colsB, 1) || ldc < max(n, 1) {
		panic(fmt.Sprintf("cudaops: Gemm strides %d, %d, %d shorter than the rows (%d, %d, %d)", lda, ldb, ldc, colsA, colsB, n))
	}
	if m == 0 || n == 0 {
		return
	}
	pc := need(c, (m-1)*ldc+n, "Gemm C")
	b.enter()
	defer runtime.UnlockOSThread()
	if k == 0 {
		// cuBLAS leaves C untouched for k = 0 only when beta = 1.
		if ldc == n {
			b.scaleOrZero(pc.ptr, m*n, beta)
			return
		}
		for r := range m {
			b.scaleOrZero(pc.ptr+cu.DevicePtr(4*r*ldc), n, beta)
		}
		return
	}
	pa, pb := need(a, (rowsA-1)*lda+colsA, "Gemm A"), need(bb, (rowsB-1)*ldb+colsB, "Gemm B")
	b.gemmOp(tA, tB, m, n, k, alpha, pa.ptr, lda, pb.ptr, ldb, beta, pc.ptr, ldc)
}

// scaleOrZero sets x = beta·x, with beta = 0 writing zeros (NaN ignored).
func (b *Backend) scaleOrZero(p cu.DevicePtr, n int, beta float32) {
	if beta == 0 {
		b.memset(p, 0, n)
		return
	}
	g, t := b.flat(b.k.scale, n)
	b.launch(b.k.scale, g, t, p, beta, int64(n))
}

func (b *Backend) CopyCols(dst nn.Buf, dstCols, dstOff int, src nn.Buf, srcCols, srcOff int, rows, cols int, beta float32) {
	if dstOff < 0 || srcOff < 0 || dstOff+cols > dstCols || srcOff+cols > srcCols {
		panic(fmt.Sprintf("cudaops: CopyCols columns [%d,+%d) of %d from [%d,+%d) of %d", dstOff, cols, dstCols, srcOff, cols, srcCols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	d := need(dst, (rows-1)*dstCols+dstOff+cols, "CopyCols dst")
	s := need(src, (rows-1)*srcCols+srcOff+cols, "CopyCols src")
	g, t := b.rowwise(b.k.copyCols, rows, cols)
	b.kernel(b.k.copyCols, g, t, d.ptr, int32(dstCols), int32(dstOff), s.ptr, int32(srcCols), int32(srcOff),
		int32(rows), int32(cols), beta)
}

func (b *Backend) GatherRows(dst, src nn.Buf, cols int, idx nn.Buf, n int) {
	if cols < 0 || n < 0 {
		panic(fmt.Sprintf("cudaops: GatherRows of %d rows of %d", n, cols))
	}
	d, s, ix := need(dst, n*cols, "GatherRows dst"), dev(src), need(idx, n, "GatherRows idx")
	if n*cols == 0 {
		return
	}
	g, t := rowShape(n)
	b.kernel(b.k.gatherRows, g, t, d.ptr, s.ptr, int32(cols), ix.ptr, int64(s.n/cols))
}

func (b *Backend) FoldCols(dst nn.Buf, dstCols int, src nn.Buf, srcCols, rows, off int) {
	if w := srcCols - dstCols; w < 0 || off < 0 || off+w > dstCols {
		panic(fmt.Sprintf("cudaops: FoldCols of %d columns onto %d at %d", srcCols, dstCols, off))
	}
	d, s := need(dst, rows*dstCols, "FoldCols dst"), need(src, rows*srcCols, "FoldCols src")
	if rows*dstCols == 0 {
		return
	}
	g, t := b.rowwise(b.k.foldCols, rows, dstCols)
	b.kernel(b.k.foldCols, g, t, d.ptr, int32(dstCols), s.ptr, int32(srcCols), int32(rows), int32(off))
}

func (b *Backend) UnfoldCols(dst nn.Buf, dstCols int, src nn.Buf, srcCols, rows, off int, beta float32) {
	if w := dstCols - srcCols; w < 0 || off < 0 || off+w > srcCols {
		panic(fmt.Sprintf("cudaops: UnfoldCols of %d columns into %d from %d", srcCols, dstCols, off))
	}
	d, s := need(dst, rows*dstCols, "UnfoldCols dst"), need(src, rows*srcCols, "UnfoldCols src")
	if rows*dstCols == 0 {
		return
	}
	g, t := b.rowwise(b.k.unfoldCols, rows, dstCols)
	b.kernel(b.k.unfoldCols, g, t, d.ptr, int32(dstCols), s.ptr, int32(srcCols), int32(rows), int32(off), beta)
}

func (b *Backend) Axpy(y nn.Buf, alpha float32, x nn.Buf, n int) {
	py, px := need(y, n, "Axpy y"), need(x, n, "Axpy x")
	if n == 0 {
		return
	}
	g, t := b.flat(b.k.axpy, n)
	b.kernel(b.k.axpy, g, t, py.ptr, alpha, px.ptr, int64(n))
}

func (b *Backend) Scale(x nn.Buf, n int, alpha float32) {
	px := need(x, n, "Scale")
	if n == 0 {
		return
	}
	g, t := b.flat(b.k.scale, n)
	b.kernel(b.k.scale, g, t, px.ptr, alpha, int64(n))
}

func (b *Backend) Mul(x, y nn.Buf, n int) {
	px, py := need(x, n, "Mul x"), need(y, n, "Mul y")
	if n == 0 {
		return
	}
	g, t := b.flat(b.k.mul, n)
	b.kernel(b.k.mul, g, t, px.ptr, py.ptr, int64(n))
}

func (b *Backend) Dot(x, y nn.Buf, n int) float64 {
	px, py := need(x, n, "Dot x"), need(y, n, "Dot y")
	if n == 0 {
		return 0
	}
	b.notRecording("Dot")
	b.enter()
	defer runtime.UnlockOSThread()
	total := b.part + 8*npart
	b.launch(b.k.dotPartial, dim{npart, 1}, dim{threads, 1}, b.part, px.ptr, py.ptr, int64(n))
	b.launch(b.k.sumPartials, dim{1, 1}, dim{threads, 1}, total, b.part, int32(npart))
	var out float64
	b.download(unsafe.Pointer(&out), total, 8, "Dot: download")
	return out
}

func (b *Backend) DotTo(dst, x, y nn.Buf, n int) {
	pd, px, py := need(dst, 1, "DotTo dst"), need(x, n, "DotTo x"), need(y, n, "DotTo y")
	b.enter()
	defer runtime.UnlockOSThread()
	b.launch(b.k.dotPartial, dim{npart, 1}, dim{threads, 1}, b.part, px.ptr, py.ptr, int64(n))
	b.launch(b.k.partialsF32, dim{1, 1}, dim{threads, 1}, pd.ptr, b.part, int32(npart))
}

func (b *Backend) Mean(dst, x nn.Buf, n int) {
	pd, px := need(dst, 1, "Mean dst"), need(x, n, "Mean x")
	if n > math.MaxInt32 {
		panic(fmt.Sprintf("cudaops: Mean of %d elements", n))
	}
	b.kernel(b.k.meanOf, dim{1, 1}, dim{threads, 1}, pd.ptr, px.ptr, int32(n))
}

func (b *Backend) ClipNorm(x nn.Buf, n int, maxNorm float32, norm nn.Buf) {
	px, pn := need(x, n, "ClipNorm x"), optional(norm, 1, "ClipNorm norm")
	b.enter()
	defer runtime.UnlockOSThread()
	b.launch(b.k.dotPartial, dim{npart, 1}, dim{threads, 1}, b.part, px.ptr, px.ptr, int64(n))
	g, t := b.flat(b.k.clipScale, n)
	b.launch(b.k.clipScale, g, t, px.ptr, int64(n), b.part, int32(npart), maxNorm, pn)
}

func (b *Backend) ClipCoef(coef, x nn.Buf, n int, maxNorm float32, norm nn.Buf) {
	pc, px, pn := need(coef, 1, "ClipCoef coef"), need(x, n, "ClipCoef x"), optional(norm, 1, "ClipCoef norm")
	b.enter()
	defer runtime.UnlockOSThread()
	b.launch(b.k.dotPartial, dim{npart, 1}, dim{threads, 1}, b.part, px.ptr, px.ptr, int64(n))
	b.launch(b.k.clipCoef, dim{1, 1}, dim{threads, 1}, pc.ptr, b.part, int32(npart), maxNorm, pn)
}

func (b *Backend) CountEqual(dst, a, bb nn.Buf, rows, cols int) {
	pd, pa, pb := need(dst, rows, "CountEqual dst"), need(a, rows*cols, "CountEqual a"), need(bb, cols, "CountEqual b")
	if rows == 0 {
		return
	}
	g, t := rowShape(rows)
	b.kernel(b.k.countEqual, g, t, pd.ptr, pa.ptr, pb.ptr, int32(cols))
}

func (b *Backend) MeanOthers(dst, src nn.Buf, views, n int) {
	if views < 2 {
		panic(fmt.Sprintf("cudaops: MeanOthers of %d views, need at least 2", views))
	}
	pd, ps := need(dst, views*n, "MeanOthers dst"), need(src, views*n, "MeanOthers src")
	if n == 0 {
		return
	}
	g, t := b.flat(b.k.meanOthers, n)
	b.kernel(b.k.meanOthers, g, t, pd.ptr, ps.ptr, int32(views), 1/float32(views-1), int64(n))
}

func (b *Backend) AddBiasLeakyReLU(x, bias nn.Buf, rows, cols int, slope float32) {
	px, pb := need(x, rows*cols, "AddBiasLeakyReLU x"), optional(bias, cols, "AddBiasLeakyReLU bias")
	if rows*cols == 0 {
		return
	}
	g, t := b.rowwise(b.k.biasLReLU, rows, cols)
	b.kernel(b.k.biasLReLU, g, t, px.ptr, pb, int32(rows), int32(cols), slope)
}

func (b *Backend) LeakyReLUBackward(dx, dy, y nn.Buf, n int, slope float32) {
	px, pd, py := need(dx, n, "LeakyReLUBackward dx"), need(dy, n, "LeakyReLUBackward dy"), need(y, n, "LeakyReLUBackward y")
	if n == 0 {
		return
	}
	g, t := b.flat(b.k.lreluBwd, n)
	b.kernel(b.k.lreluBwd, g, t, px.ptr, pd.ptr, py.ptr, slope, int64(n))
}

func (b *Backend) ColSums(dst, x nn.Buf, rows, cols int, beta float32) {
	pd, px := need(dst, cols, "ColSums dst"), need(x, rows*cols, "ColSums x")
	if cols == 0 {
		return
	}
	g, t := colShape(cols)
	b.kernel(b.k.colSums, g, t, pd.ptr, px.ptr, int32(rows), int32(cols), beta)
}

func (b *Backend) BNStats(stats, x, runMean nn.Buf, rows, cols int) {
	ps, px, pm := need(stats, 2*cols+1, "BNStats stats"), need(x, rows*cols, "BNStats x"), need(runMean, cols, "BNStats runMean")
	g, t := colShape(cols)
	if cols == 0 {
		g = dim{1, 1} // still write the row count
	}
	b.kernel(b.k.bnStats, g, t, ps.ptr, px.ptr, pm.ptr, int32(rows), int32(cols))
}

func (b *Backend) BNMoments(mean, variance, runMean, runVar, stats nn.Buf, cols int, momentum float32) {
	pm, pv := need(mean, cols, "BNMoments mean"), need(variance, cols, "BNMoments variance")
	prm, prv := need(runMean, cols, "BNMoments runMean"), need(runVar, cols, "BNMoments runVar")
	ps := need(stats, 2*cols+1, "BNMoments stats")
	if cols == 0 {
		return
	}
	g, t := b.flat(b.k.bnMoments, cols)
	b.kernel(b.k.bnMoments, g, t, pm.ptr, pv.ptr, prm.ptr, prv.ptr, ps.ptr, int32(cols), momentum)
}

func (b *Backend) BNNormalize(y nn.Buf, ldy int, x, mean, variance, gamma, beta nn.Buf, rows, cols int, eps float32) {
	n := rows * cols
	if ldy < cols {
		panic(fmt.Sprintf("cudaops: BNNormalize output rows %d apart, %d columns", ldy, cols))
	}
	py, px := need(y, max(0, (rows-1)*ldy+cols), "BNNormalize y"), need(x, n, "BNNormalize x")
	pm, pv := need(mean, cols, "BNNormalize mean"), need(variance, cols, "BNNormalize variance")
	pg, pb := need(gamma, cols, "BNNormalize gamma"), need(beta, cols, "BNNormalize beta")
	if n == 0 {
		return
	}
	g, t := b.rowwise(b.k.bnNorm, rows, cols)
	b.kernel(b.k.bnNorm, g, t, py.ptr, int32(ldy), px.ptr, pm.ptr, pv.ptr, pg.ptr, pb.ptr, int32(rows), int32(cols), eps)
}

func (b *Backend) BNBackwardStats(stats, dgamma, dbeta, dy, x, mean, variance nn.Buf, rows, cols int, eps, beta float32) {
	ps := need(stats, 2*cols+1, "BNBackwardStats stats")
	pd, px := need(dy, rows*cols, "BNBackwardStats dy"), need(x, rows*cols, "BNBackwardStats x")
	pm, pv := need(mean, cols, "BNBackwardStats mean"), need(variance, cols, "BNBackwardStats variance")
	pdg, pdb := optional(dgamma, cols, "BNBackwardStats dgamma"), optional(dbeta, cols, "BNBackwardStats dbeta")
	g, t := colShape(cols)
	if cols == 0 {
		g = dim{1, 1} // still write the row count
	}
	b.kernel(b.k.bnBwdStats, g, t, ps.ptr, pdg, pdb, pd.ptr, px.ptr, pm.ptr, pv.ptr, int32(rows), int32(cols), eps, beta)
}

func (b *Backend) BNBackward(dx, dy, x, mean, variance, gamma, stats nn.Buf, rows, cols int, eps, slope float32) {
	n := rows * cols
	pdx, pdy, px := need(dx, n, "BNBackward dx"), need(dy, n, "BNBackward dy"), need(x, n, "BNBackward x")
	pm, pv := need(mean, cols, "BNBackward mean"), need(variance, cols, "BNBackward variance")
	pg, ps := need(gamma, cols, "BNBackward gamma"), need(stats, 2*cols+1, "BNBackward stats")
	if n == 0 {
		return
	}
	g, t := b.rowwise(b.k.bnBackward, rows, cols)
	b.kernel(b.k.bnBackward, g, t, pdx.ptr, pdy.ptr, px.ptr, pm.ptr, pv.ptr, pg.ptr, ps.ptr, int32(rows), int32(cols), eps, slope)
}

func (b *Backend) DropoutMask(mask nn.Buf, rows, cols int, p float32, key nn.RNGKey, rowBase uint32, stepAt nn.Buf) {
	pm := need(mask, rows*cols, "DropoutMask")
	ps := optional(stepAt, 1, "DropoutMask stepAt")
	if rows*cols == 0 {
		return
	}
	g, t := b.flat(b.k.dropoutMask, rows*cols)
	b.kernel(b.k.dropoutMask, g, t, pm.ptr, int32(rows), int32(cols), p, key.Seed, unlessAt(key.Step, ps), key.Stream, rowBase, ps)
}

func (b *Backend) SoftmaxCE(loss, dx, x, labels nn.Buf, rows, cols int, invT, scale, beta float32, scaleAt nn.Buf) {
	px, pl := need(x, rows*cols, "SoftmaxCE x"), need(labels, rows, "SoftmaxCE labels")
	psc := optional(scaleAt, 1, "SoftmaxCE scaleAt")
	plo, pdx := optional(loss, rows, "SoftmaxCE loss"), optional(dx, rows*cols, "SoftmaxCE dx")
	if rows == 0 {
		return
	}
	g, t := rowShape(rows)
	b.kernel(b.k.softmaxCE, g, t, plo, pdx, px.ptr, pl.ptr, int32(cols), invT, unlessAt(scale, psc), beta, psc)
}

func (b *Backend) Softmax(y, x nn.Buf, rows, cols int, invT float32) {
	py, px := need(y, rows*cols, "Softmax y"), need(x, rows*cols, "Softmax x")
	if rows == 0 {
		return
	}
	g, t := rowShape(rows)
	b.kernel(b.k.softmax, g, t, py.ptr, px.ptr, int32(cols), invT)
}

func (b *Backend) Argmax(dst, x nn.Buf, rows, cols int) {
	pd, px := need(dst, rows, "Argmax dst"), need(x, rows*cols, "Argmax x")
	if rows == 0 {
		return
	}
	g, t := rowShape(rows)
	b.kernel(b.k.argmax, g, t, pd.ptr, px.ptr, int32(cols))
}

func (b *Backend) SampleGumbel(dst, x nn.Buf, rows, cols int, invT float32, key nn.RNGKey, rowIndex, stepAt nn.Buf) {
	pd, px := need(dst, rows, "SampleGumbel dst"), need(x, rows*cols, "SampleGumbel x")
	ps := optional(stepAt, 1, "SampleGumbel stepAt")
	pi := need(rowIndex, rows, "SampleGumbel row indices")
	if rows == 0 {
		return
	}
	g, t := rowShape(rows)
	b.kernel(b.k.sampleGB, g, t, pd.ptr, px.ptr, pi.ptr, int32(cols), invT, key.Seed, unlessAt(key.Step, ps), key.Stream, ps)
}

func (b *Backend) Adam(w, g, m, v nn.Buf, n int, h nn.AdamHyper, sched, gscale nn.Buf) {
	pw, pg, pm, pv := need(w, n, "Adam w"), need(g, n, "Adam g"), need(m, n, "Adam m"), need(v, n, "Adam v")
	ps, pk := optional(sched, 2, "Adam sched"), optional(gscale, 1, "Adam gscale")
	if n == 0 {
		return
	}
	gr, t := b.flat(b.k.adam, n)
	b.kernel(b.k.adam, gr, t, pw.ptr, pg.ptr, pm.ptr, pv.ptr, int64(n), unlessAt(h.StepSize, ps), h.Beta1, h.Beta2, h.Eps, h.WeightDecay,
		unlessAt(h.BC2Sqrt, ps), h.OneMinusBeta1, h.OneMinusBeta2, ps, pk)
}

// unlessAt is the kernel argument v, or 0 when the kernel reads that value from the
// device operand at instead (at != 0: stepAt, scaleAt, sched). Callers still compute v
// for each call (nn.Adam's step size, the dropout step), and passed through it would
// make every update's op differ from the last, so that Record never replayed the
// segment and, after maxRecaptures changes in a row, refused it; the kernel never
// reads it.
func unlessAt[T uint32 | float32](v T, at cu.DevicePtr) T {
	if at != 0 {
		return 0
	}
	return v
}

// philox runs the device Philox4x32-10 on counters (i, i+1, i+2, i+3), i < n,
// with key k, returning the first output words: the test of the device RNG
// against nn.Philox4x32.
func (b *Backend) philox(n int, k [2]uint32) []uint32 {
	b.notRecording("philox")
	out := b.Alloc(n)
	defer b.Free(out)
	b.enter()
	defer runtime.UnlockOSThread()
	g, t := b.flat(b.k.philoxTest, n)
	b.launch(b.k.philoxTest, g, t, dev(out).ptr, k[0], k[1], int32(n))
	u := make([]uint32, n)
	b.download(unsafe.Pointer(&u[0]), dev(out).ptr, 4*n, "philox: download")
	return u
}
