package nn

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"mct/blas"
)

// CPU is the host Backend: buffers are Go slices, GEMM goes through package blas
// (OpenBLAS with cgo, gonum without) and the other kernels are Go loops, split over
// GOMAXPROCS goroutines when a call is large enough to pay for it. Reductions
// accumulate in float64 and split work by columns or fixed-size chunks, so results
// do not depend on the number of threads. A CPU is safe for concurrent use.
type CPU struct {
	uploaded atomic.Int64 // bytes copied in by Upload (UploadedBytes)
}

var (
	_ Sharer  = (*CPU)(nil)
	_ Adopter = (*CPU)(nil)
)

// NewCPU returns the CPU backend and sizes the BLAS thread pool to GOMAXPROCS.
func NewCPU() *CPU {
	blas.SetThreads(runtime.GOMAXPROCS(0))
	return &CPU{}
}

// HostBuf is the CPU backend's Buf: a float32 slice.
type HostBuf []float32

// Len implements Buf.
func (h HostBuf) Len() int { return len(h) }

// host returns the slice behind b, panicking when b belongs to another backend.
func host(b Buf) []float32 {
	h, ok := b.(HostBuf)
	if !ok {
		panic(fmt.Sprintf("nn: CPU backend given a %T buffer", b))
	}
	return h
}

// need returns the first n elements of b, panicking when b is shorter.
func need(b Buf, n int, what string) []float32 {
	h := host(b)
	if n < 0 || len(h) < n {
		panic(fmt.Sprintf("nn: %s has %d elements, need %d", what, len(h), n))
	}
	return h[:n]
}

// parallelMinWork is the element count under which a kernel runs on one goroutine:
// below it, starting goroutines costs more than the loop (measured ~µs per spawn).
const parallelMinWork = 1 << 15

// parallel runs f over [0,n) split into contiguous chunks, one per goroutine, when
// work (elements touched) is large; otherwise in the caller.
func parallel(n, work int, f func(lo, hi int)) {
	p := runtime.GOMAXPROCS(0)
	if p == 1 || work < parallelMinWork || n < 2 {
		f(0, n)
		return
	}
	p = min(p, n)
	var wg sync.WaitGroup
	for i := 0; i < p; i++ {
		lo, hi := i*n/p, (i+1)*n/p
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// Name implements Backend.
func (*CPU) Name() string { return "cpu" }

// Alloc implements Backend.
func (*CPU) Alloc(n int) Buf { return HostBuf(make([]float32, n)) }

// Free implements Backend; the garbage collector reclaims host buffers.
func (*CPU) Free(Buf) {}

// View implements Backend.
func (*CPU) View(b Buf, off, n int) Buf {
	h := host(b)
	if off < 0 || n < 0 || off+n > len(h) {
		panic(fmt.Sprintf("nn: view [%d,%d) of a %d-element buffer", off, off+n, len(h)))
	}
	return HostBuf(h[off : off+n : off+n])
}

// Upload implements Backend.
func (c *CPU) Upload(dst Buf, src []float32) {
	copy(need(dst, len(src), "upload destination"), src)
	c.uploaded.Add(4 * int64(len(src)))
}

// UploadedBytes is the number of bytes Upload has copied in so far (cudaops.Backend has
// the same counter): `mct bench` reports it per update.
func (c *CPU) UploadedBytes() int64 { return c.uploaded.Load() }

// Adopt implements Adopter: host becomes a Buf as it is.
func (*CPU) Adopt(host []float32) Buf { return HostBuf(host) }

// Shares implements Sharer: Copy reads any buffer that is host memory, and o's are
// when o can adopt host slices (CPU, or a backend built on it).
func (*CPU) Shares(o Backend) bool {
	_, ok := o.(Adopter)
	return ok
}

// Mark implements Sharer; every CPU call has finished when it returns.
func (*CPU) Mark(k int) { checkMark(k) }

// After implements Sharer.
func (*CPU) After(o Backend, k int) { checkMark(k) }

func checkMark(k int) {
	if k < 0 || k >= Marks {
		panic(fmt.Sprintf("nn: mark %d outside [0, %d)", k, Marks))
	}
}

// Download implements Backend.
func (*CPU) Download(dst []float32, src Buf) { copy(dst, need(src, len(dst), "download source")) }

// Copy implements Backend.
func (*CPU) Copy(dst, src Buf, n int) {
	copy(need(dst, n, "copy destination"), need(src, n, "copy source"))
}

// Fill implements Backend.
func (*CPU) Fill(x Buf, n int, v float32) {
	s := need(x, n, "fill target")
	for i := range s {
		s[i] = v
	}
}

// GatherRows implements Backend. The indices are checked before any copy, in the
// caller's goroutine, so a bad one panics where it can be recovered.
func (*CPU) GatherRows(dst, src Buf, cols int, idx Buf, n int) {
	d, ix, s := need(dst, n*cols, "GatherRows destination"), need(idx, n, "GatherRows indices"), host(src)
	for _, v := range ix {
		if k := int(math.Float32bits(v)); (k+1)*cols > len(s) {
			panic(fmt.Sprintf("nn: GatherRows index %d outside a source of %d rows of %d", k, len(s)/max(cols, 1), cols))
		}
	}
	parallel(n, n*cols, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			k := int(math.Float32bits(ix[i]))
			copy(d[i*cols:(i+1)*cols], s[k*cols:(k+1)*cols])
		}
	})
}

// Sync implements Backend; CPU work is synchronous.
func (*CPU) Sync() {}

// Gemm implements Backend.
func (c *CPU) Gemm(tA, tB bool, m, n, k int, alpha float32, a, b Buf, beta float32, cc Buf) {
	lda, ldb := PackedLD(tA, tB, m, n, k)
	c.GemmStrided(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cc, max(n, 1))
}

// GemmStrided implements Backend.
func (*CPU) GemmStrided(tA, tB bool, m, n, k int, alpha float32, a Buf, lda int, b Buf, ldb int, beta float32, c Buf, ldc int) {
	blas.Sgemm(tA, tB, m, n, k, alpha, host(a), lda, host(b), ldb, beta, host(c), ldc)
}

// CopyCols implements Backend.
func (*CPU) CopyCols(dst Buf, dstCols, dstOff int, src Buf, srcCols, srcOff int, rows, cols int, beta float32) {
	if dstOff+cols > dstCols || srcOff+cols > srcCols {
		panic(fmt.Sprintf("nn: column block [%d,+%d) outside %d or [%d,+%d) outside %d columns",
			dstOff, cols, dstCols, srcOff, cols, srcCols))
	}
	d := need(dst, rows*dstCols, "CopyCols destination")
	s := need(src, rows*srcCols, "CopyCols source")
	parallel(rows, rows*cols, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dr := d[r*dstCols+dstOff : r*dstCols+dstOff+cols]
			sr := s[r*srcCols+srcOff : r*srcCols+srcOff+cols]
			if beta == 0 {
				copy(dr, sr)
				continue
			}
			for j, v := range sr {
				dr[j] = beta*dr[j] + v
			}
		}
	})
}

// FoldCols implements Backend.
func (*CPU) FoldCols(dst Buf, dstCols int, src Buf, srcCols, rows, off int) {
	w := srcCols - dstCols
	if w < 0 || off < 0 || off+w > dstCols {
		panic(fmt.Sprintf("nn: FoldCols of %d columns onto %d at %d", srcCols, dstCols, off))
	}
	d, s := need(dst, rows*dstCols, "FoldCols destination"), need(src, rows*srcCols, "FoldCols source")
	parallel(rows, rows*dstCols, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dr, sr := d[r*dstCols:(r+1)*dstCols], s[r*srcCols:(r+1)*srcCols]
			copy(dr, sr[:dstCols])
			for j, v := range sr[dstCols:] {
				dr[off+j] += v
			}
		}
	})
}

// UnfoldCols implements Backend.
func (*CPU) UnfoldCols(dst Buf, dstCols int, src Buf, srcCols, rows, off int, beta float32) {
	w := dstCols - srcCols
	if w < 0 || off < 0 || off+w > srcCols {
		panic(fmt.Sprintf("nn: UnfoldCols of %d columns into %d from %d", srcCols, dstCols, off))
	}
	d, s := need(dst, rows*dstCols, "UnfoldCols destination"), need(src, rows*srcCols, "UnfoldCols source")
	parallel(rows, rows*dstCols, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dr, sr := d[r*dstCols:(r+1)*dstCols], s[r*srcCols:(r+1)*srcCols]
			for j := range dr {
				k := j
				if j >= srcCols {
					k = off + j - srcCols
				}
				dr[j] = accumulate(beta, dr[j], sr[k])
			}
		}
	})
}

// Axpy implements Backend.
func (*CPU) Axpy(y Buf, alpha float32, x Buf, n int) {
	ys, xs := need(y, n, "axpy y"), need(x, n, "axpy x")
	parallel(n, n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ys[i] += alpha * xs[i]
		}
	})
}

// Scale implements Backend.
func (*CPU) Scale(x Buf, n int, alpha float32) {
	xs := need(x, n, "scale target")
	parallel(n, n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xs[i] *= alpha
		}
	})
}

// Mul implements Backend.
func (*CPU) Mul(x, y Buf, n int) {
	xs, ys := need(x, n, "mul x"), need(y, n, "mul y")
	parallel(n, n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xs[i] *= ys[i]
		}
	})
}

// dotChunk fixes the summation tree of Dot independently of the thread count.
const dotChunk = 1 << 14

// Dot implements Backend.
func (*CPU) Dot(x, y Buf, n int) float64 {
	xs, ys := need(x, n, "dot x"), need(y, n, "dot y")
	chunks := (n + dotChunk - 1) / dotChunk
	part := make([]float64, chunks)
	parallel(chunks, n, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var s float64
			for i := c * dotChunk; i < min(n, (c+1)*dotChunk); i++ {
				s += float64(xs[i]) * float64(ys[i])
			}
			part[c] = s
		}
	})
	var s float64
	for _, v := range part {
		s += v
	}
	return s
}

// DotTo implements Backend.
func (c *CPU) DotTo(dst, x, y Buf, n int) {
	d := need(dst, 1, "dot result")
	d[0] = float32(c.Dot(x, y, n))
}

// Mean implements Backend. One goroutine sums in index order: n is a batch's row
// count, and a fixed order keeps the result independent of the thread count.
func (*CPU) Mean(dst, x Buf, n int) {
	d, xs := need(dst, 1, "mean result"), need(x, n, "mean input")
	var s float64
	for _, v := range xs {
		s += float64(v)
	}
	d[0] = float32(s / float64(n))
}

// ClipNorm implements Backend.
func (c *CPU) ClipNorm(x Buf, n int, maxNorm float32, norm Buf) {
	if coef := c.clipCoef(x, n, maxNorm, norm); coef < 1 {
		c.Scale(x, n, float32(coef))
	}
}

// ClipCoef implements Backend.
func (c *CPU) ClipCoef(coef, x Buf, n int, maxNorm float32, norm Buf) {
	k := need(coef, 1, "clip factor")
	k[0] = 1
	if f := c.clipCoef(x, n, maxNorm, norm); f < 1 {
		k[0] = float32(f)
	}
}

// clipCoef is clip_grad_norm_'s factor maxNorm/(‖x‖+1e-6) for x[0:n], in float64; it
// writes float32(‖x‖) to norm[0] unless norm is nil.
func (c *CPU) clipCoef(x Buf, n int, maxNorm float32, norm Buf) float64 {
	total := math.Sqrt(c.Dot(x, x, n))
	if norm != nil {
		need(norm, 1, "clip norm")[0] = float32(total)
	}
	return float64(maxNorm) / (total + 1e-6)
}

// CountEqual implements Backend.
func (*CPU) CountEqual(dst, a, b Buf, rows, cols int) {
	d, as, bs := need(dst, rows, "count result"), need(a, rows*cols, "count input a"), need(b, cols, "count input b")
	for r := range d {
		hits := 0
		for c, v := range as[r*cols : (r+1)*cols] {
			if v == bs[c] {
				hits++
			}
		}
		d[r] = float32(hits)
	}
}

// MeanOthers implements Backend.
func (*CPU) MeanOthers(dst, src Buf, views, n int) {
	if views < 2 {
		panic(fmt.Sprintf("nn: MeanOthers of %d views, need at least 2", views))
	}
	d, s := need(dst, views*n, "leave-one-out means"), need(src, views*n, "leave-one-out input")
	a := 1 / float32(views-1)
	parallel(n, views*views*n, func(lo, hi int) {
		for w := 0; w < views; w++ {
			out := d[w*n+lo : w*n+hi]
			clear(out)
			for o := 0; o < views; o++ {
				if o == w {
					continue
				}
				in := s[o*n+lo : o*n+hi]
				for i := range out {
					out[i] += a * in[i]
				}
			}
		}
	})
}

// leakyFactor returns 1 for v > 0 and slope otherwise, without a branch: the signs
// of activations are random, and a mispredicted branch per element cost ~5× the
// whole loop (measured by BenchmarkLeakyReLUBackward). int32(bits) > 0 holds exactly
// for v > 0 (+0 has bits 0, negatives have the sign bit), and the compiler turns
// the integer select into a conditional move.
func leakyFactor(v float32, oneBits, slopeBits uint32) float32 {
	f := slopeBits
	if int32(math.Float32bits(v)) > 0 {
		f = oneBits
	}
	return math.Float32frombits(f)
}

// AddBiasLeakyReLU implements Backend.
func (*CPU) AddBiasLeakyReLU(x, bias Buf, rows, cols int, slope float32) {
	xs := need(x, rows*cols, "activation")
	var bs []float32
	if bias != nil {
		bs = need(bias, cols, "bias")
	}
	one, sl := math.Float32bits(1), math.Float32bits(slope)
	parallel(rows, rows*cols, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := xs[r*cols : (r+1)*cols]
			if bs != nil {
				bs := bs[:len(row)]
				for j, v := range row {
					v += bs[j]
					row[j] = v * leakyFactor(v, one, sl)
				}
				continue
			}
			for j, v := range row {
				row[j] = v * leakyFactor(v, one, sl)
			}
		}
	})
}

// LeakyReLUBackward implements Backend.
func (*CPU) LeakyReLUBackward(dx, dy, y Buf, n int, slope float32) {
	xs, ds, ys := need(dx, n, "input gradient"), need(dy, n, "activation gradient"), need(y, n, "activation output")
	one, sl := math.Float32bits(1), math.Float32bits(slope)
	parallel(n, n, func(lo, hi int) {
		x, d, y := xs[lo:hi], ds[lo:hi], ys[lo:hi]
		d, y = d[:len(x)], y[:len(x)]
		for i := range x {
			x[i] = d[i] * leakyFactor(y[i], one, sl)
		}
	})
}

// colReduce runs f(j0, j1) over column ranges, split across goroutines by columns so
// every column is summed in row order by one goroutine.
func colReduce(rows, cols int, f func(j0, j1 int)) {
	parallel(cols, rows*cols, f)
}

// ColSums implements Backend.
func (*CPU) ColSums(dst Buf, x Buf, rows, cols int, beta float32) {
	d, xs := need(dst, cols, "column sums"), need(x, rows*cols, "column-sum input")
	colReduce(rows, cols, func(j0, j1 int) {
		acc := make([]float64, j1-j0)
		for r := 0; r < rows; r++ {
			row := xs[r*cols+j0 : r*cols+j1]
			for j, v := range row {
				acc[j] += float64(v)
			}
		}
		for j, s := range acc {
			if beta == 0 {
				d[j0+j] = float32(s)
			} else {
				d[j0+j] = float32(float64(beta)*float64(d[j0+j]) + s)
			}
		}
	})
}

// BNStats implements Backend.
func (*CPU) BNStats(stats, x, runMean Buf, rows, cols int) {
	st := need(stats, 2*cols+1, "BN stats")
	xs, sh := need(x, rows*cols, "BN input"), need(runMean, cols, "BN running mean")
	colReduce(rows, cols, func(j0, j1 int) {
		s1, s2 := make([]float64, j1-j0), make([]float64, j1-j0)
		for r := 0; r < rows; r++ {
			row := xs[r*cols+j0 : r*cols+j1]
			for j, v := range row {
				d := float64(v) - float64(sh[j0+j])
				s1[j] += d
				s2[j] += d * d
			}
		}
		for j := range s1 {
			st[j0+j], st[cols+j0+j] = float32(s1[j]), float32(s2[j])
		}
	})
	st[2*cols] = float32(rows)
}

// BNMoments implements Backend.
func (*CPU) BNMoments(mean, variance, runMean, runVar, stats Buf, cols int, momentum float32) {
	st := need(stats, 2*cols+1, "BN stats")
	mu, vr := need(mean, cols, "BN mean"), need(variance, cols, "BN variance")
	rm, rv := need(runMean, cols, "BN running mean"), need(runVar, cols, "BN running var")
	n := float64(st[2*cols])
	mom := float64(momentum)
	for j := 0; j < cols; j++ {
		m1 := float64(st[j]) / n
		v := math.Max(float64(st[cols+j])/n-m1*m1, 0)
		m := float64(rm[j]) + m1
		mu[j], vr[j] = float32(m), float32(v)
		unbiased := v
		if n > 1 {
			unbiased = v * n / (n - 1)
		}
		rm[j] = float32((1-mom)*float64(rm[j]) + mom*m)
		rv[j] = float32((1-mom)*float64(rv[j]) + mom*unbiased)
	}
}

// BNNormalize implements Backend.
func (*CPU) BNNormalize(y Buf, ldy int, x, mean, variance, gamma, beta Buf, rows, cols int, eps float32) {
	if ldy < cols {
		panic(fmt.Sprintf("nn: BNNormalize output rows %d apart, %d columns", ldy, cols))
	}
	var ys []float32
	if rows > 0 {
		ys = need(y, (rows-1)*ldy+cols, "BN output")
	}
	xs := need(x, rows*cols, "BN input")
	mu, vr := need(mean, cols, "BN mean"), need(variance, cols, "BN variance")
	g, b := need(gamma, cols, "BN weight"), need(beta, cols, "BN bias")
	// (x−μ) first, as PyTorch does: x·scale+shift would cancel when |μ| ≫ σ.
	scale := make([]float32, cols)
	for j := range scale {
		scale[j] = float32(float64(g[j]) / math.Sqrt(float64(vr[j])+float64(eps)))
	}
	parallel(rows, rows*cols, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := xs[r*cols:(r+1)*cols], ys[r*ldy:r*ldy+cols]
			for j, v := range xr {
				yr[j] = (v-mu[j])*scale[j] + b[j]
			}
		}
	})
}

// BNBackwardStats implements Backend.
func (*CPU) BNBackwardStats(stats, dgamma, dbeta, dy, x, mean, variance Buf, rows, cols int, eps, beta float32) {
	st := need(stats, 2*cols+1, "BN backward stats")
	var dg, db []float32
	if dgamma != nil {
		dg = need(dgamma, cols, "BN weight gradient")
	}
	if dbeta != nil {
		db = need(dbeta, cols, "BN bias gradient")
	}
	ds, xs := need(dy, rows*cols, "BN output gradient"), need(x, rows*cols, "BN input")
	mu, vr := need(mean, cols, "BN mean"), need(variance, cols, "BN variance")
	colReduce(rows, cols, func(j0, j1 int) {
		s1, s2 := make([]float64, j1-j0), make([]float64, j1-j0)
		inv := make([]float64, j1-j0)
		for j := range inv {
			inv[j] = 1 / math.Sqrt(float64(vr[j0+j])+float64(eps))
		}
		for r := 0; r < rows; r++ {
			dr, xr := ds[r*cols+j0:r*cols+j1], xs[r*cols+j0:r*cols+j1]
			for j, d := range dr {
				xhat := (float64(xr[j]) - float64(mu[j0+j])) * inv[j]
				s1[j] += float64(d)
				s2[j] += float64(d) * xhat
			}
		}
		for j := range s1 {
			a, b := float32(s1[j]), float32(s2[j])
			st[j0+j], st[cols+j0+j] = a, b
			if db != nil {
				db[j0+j] = accumulate(beta, db[j0+j], a)
			}
			if dg != nil {
				dg[j0+j] = accumulate(beta, dg[j0+j], b)
			}
		}
	})
	st[2*cols] = float32(rows)
}

// accumulate is beta·d + s, or s without reading d when beta is 0 (a Backend's
// "beta = 0 does not read"). beta = 1 gives the float32 sum d + s.
func accumulate(beta, d, s float32) float32 {
	if beta == 0 {
		return s
	}
	return beta*d + s
}

// BNBackward implements Backend.
func (*CPU) BNBackward(dx, dy, x, mean, variance, gamma, stats Buf, rows, cols int, eps, slope float32) {
	dxs, ds := need(dx, rows*cols, "BN input gradient"), need(dy, rows*cols, "BN output gradient")
	xs, st := need(x, rows*cols, "BN input"), need(stats, 2*cols+1, "BN backward stats")
	mu, vr, g := need(mean, cols, "BN mean"), need(variance, cols, "BN variance"), need(gamma, cols, "BN weight")
	n := float64(st[2*cols])
	// dx = k·dy − k·S1/N − k·inv·S2/N·(x−μ) with k = γ·inv: per-column constants.
	k, c0, c1 := make([]float32, cols), make([]float32, cols), make([]float32, cols)
	for j := range k {
		inv := 1 / math.Sqrt(float64(vr[j])+float64(eps))
		kk := float64(g[j]) * inv
		k[j] = float32(kk)
		c0[j] = float32(kk * float64(st[j]) / n)
		c1[j] = float32(kk * inv * float64(st[cols+j]) / n)
	}
	one, sl := math.Float32bits(1), math.Float32bits(slope)
	parallel(rows, rows*cols, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dr, xr, or := ds[r*cols:(r+1)*cols], xs[r*cols:(r+1)*cols], dxs[r*cols:(r+1)*cols]
			for j := range dr {
				v := k[j]*dr[j] - c0[j] - c1[j]*(xr[j]-mu[j])
				or[j] = v * leakyFactor(xr[j], one, sl)
			}
		}
	})
}

// DropoutMask implements Backend.
func (*CPU) DropoutMask(mask Buf, rows, cols int, p float32, key RNGKey, rowBase uint32, stepAt Buf) {
	m := need(mask, rows*cols, "dropout mask")
	key = keyAt(key, stepAt)
	keep := 1 / (1 - p)
	parallel(rows, rows*cols*8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			for c := 0; c < cols; c++ {
				if Uniform(key, rowBase+uint32(r), uint32(c)) < p {
					m[r*cols+c] = 0
				} else {
					m[r*cols+c] = keep
				}
			}
		}
	})
}

// keyAt is key with its Step read from stepAt[0] (IndexBits), if stepAt is given.
func keyAt(key RNGKey, stepAt Buf) RNGKey {
	if stepAt != nil {
		key.Step = math.Float32bits(need(stepAt, 1, "RNG step")[0])
	}
	return key
}

// label converts a float32 class index, panicking on a value that is not one.
func label(v float32, cols int) int {
	c := int(v)
	if float32(c) != v || c < 0 || c >= cols {
		panic(fmt.Sprintf("nn: label %g is not a class index in [0,%d)", v, cols))
	}
	return c
}

// SoftmaxCE implements Backend.
func (*CPU) SoftmaxCE(loss, dx, x, labels Buf, rows, cols int, invT, scale, beta float32, scaleAt Buf) {
	xs, ls := need(x, rows*cols, "logits"), need(labels, rows, "labels")
	if scaleAt != nil {
		scale = need(scaleAt, 1, "SoftmaxCE scale")[0]
	}
	var lo []float32
	if loss != nil {
		lo = need(loss, rows, "per-row loss")
	}
	var ds []float32
	if dx != nil {
		ds = need(dx, rows*cols, "logit gradient")
	}
	parallel(rows, rows*cols*4, func(r0, r1 int) {
		p := make([]float64, cols)
		for r := r0; r < r1; r++ {
			y := label(ls[r], cols)
			lse := logSumExp(p, xs[r*cols:(r+1)*cols], invT)
			if lo != nil {
				lo[r] = float32(lse - float64(invT)*float64(xs[r*cols+y]))
			}
			if ds == nil {
				continue
			}
			dr := ds[r*cols : (r+1)*cols]
			for c := range dr {
				g := math.Exp(p[c] - lse)
				if c == y {
					g--
				}
				g *= float64(scale)
				if beta != 0 {
					g += float64(beta) * float64(dr[c])
				}
				dr[c] = float32(g)
			}
		}
	})
}

// logSumExp stores invT·x in z and returns log Σ exp(z), stabilised by the maximum.
func logSumExp(z []float64, x []float32, invT float32) float64 {
	m := math.Inf(-1)
	for c, v := range x {
		z[c] = float64(invT) * float64(v)
		m = math.Max(m, z[c])
	}
	var s float64
	for _, v := range z {
		s += math.Exp(v - m)
	}
	return m + math.Log(s)
}

// Softmax implements Backend.
func (*CPU) Softmax(y, x Buf, rows, cols int, invT float32) {
	xs, ys := need(x, rows*cols, "logits"), need(y, rows*cols, "softmax output")
	parallel(rows, rows*cols*4, func(r0, r1 int) {
		z := make([]float64, cols)
		for r := r0; r < r1; r++ {
			lse := logSumExp(z, xs[r*cols:(r+1)*cols], invT)
			for c := 0; c < cols; c++ {
				ys[r*cols+c] = float32(math.Exp(z[c] - lse))
			}
		}
	})
}

// Argmax implements Backend.
func (*CPU) Argmax(dst, x Buf, rows, cols int) {
	xs, d := need(x, rows*cols, "argmax input"), need(dst, rows, "argmax output")
	for r := 0; r < rows; r++ {
		best := 0
		for c := 1; c < cols; c++ {
			if xs[r*cols+c] > xs[r*cols+best] {
				best = c
			}
		}
		d[r] = float32(best)
	}
}

// SampleGumbel implements Backend.
func (*CPU) SampleGumbel(dst, x Buf, rows, cols int, invT float32, key RNGKey, rowIndex, stepAt Buf) {
	xs, d := need(x, rows*cols, "sampling logits"), need(dst, rows, "sampled labels")
	key = keyAt(key, stepAt)
	idx := need(rowIndex, rows, "SampleGumbel row indices")
	parallel(rows, rows*cols*16, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			best, bestV := 0, math.Inf(-1)
			row := math.Float32bits(idx[r])
			for c := 0; c < cols; c++ {
				v := float64(invT)*float64(xs[r*cols+c]) + Gumbel(key, row, uint32(c))
				if v > bestV {
					best, bestV = c, v
				}
			}
			d[r] = float32(best)
		}
	})
}

// Adam implements Backend.
func (*CPU) Adam(w, g, m, v Buf, n int, h AdamHyper, sched, gscale Buf) {
	ws, gs := need(w, n, "Adam parameters"), need(g, n, "Adam gradient")
	ms, vs := need(m, n, "Adam first moment"), need(v, n, "Adam second moment")
	if sched != nil {
		s := need(sched, 2, "Adam schedule")
		h.StepSize, h.BC2Sqrt = s[0], s[1]
	}
	gk := float32(1) // g·1 is g, bit for bit
	if gscale != nil {
		gk = need(gscale, 1, "Adam gradient factor")[0]
	}
	// Scalars in locals so the compiler keeps them in registers (a captured struct
	// could alias the slices being written), and slices resliced to one length so the
	// bounds checks leave the loop.
	wd, b1, b2, eps, step, bc2 := h.WeightDecay, h.Beta1, h.Beta2, h.Eps, h.StepSize, h.BC2Sqrt
	c1, c2 := h.OneMinusBeta1, h.OneMinusBeta2
	parallel(n, n*4, func(lo, hi int) {
		w, g, m, v := ws[lo:hi], gs[lo:hi], ms[lo:hi], vs[lo:hi]
		g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
		for i := range w {
			gi := float32(g[i]*gk) + wd*w[i] // the conversion rounds the product: no fused multiply-add
			mi := m[i]*b1 + c1*gi
			vi := v[i]*b2 + c2*gi*gi
			m[i], v[i] = mi, vi
			w[i] -= step * mi / (float32(math.Sqrt(float64(vi)))/bc2 + eps)
		}
	})
}
