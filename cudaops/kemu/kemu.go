//go:build cgo

package kemu

// #cgo CXXFLAGS: -std=c++17 -O2
// #include "emu.h"
import "C"

import (
	"fmt"
	"unsafe"

	// emu.cc #includes cudalib's kernels.cu, which the go command does not track as
	// an input of this package; importing cudalib (which embeds that file) makes a
	// change to the kernels rebuild the emulator instead of testing a cached one.
	_ "mct/cudaops/cudalib"
	"mct/nn"
)

// Backend is nn.Backend with the CPU backend's memory and GEMM and every
// other operation run by the emulated CUDA kernels, launched with the shapes
// cudaops uses.
type Backend struct {
	*nn.CPU
	part []float64 // partial sums of Dot, as cudaops' device scratch
}

// New returns the emulating backend.
func New() *Backend { return &Backend{CPU: nn.NewCPU(), part: make([]float64, npart+1)} }

// Name is "kemu".
func (*Backend) Name() string { return "kemu" }

// Launch shapes, as in cudaops/launch.go, except two: sms stands for the
// GPU's multiprocessor count, small so that grid-stride loops go round; and
// Dot's first pass runs npart = 8 blocks instead of 1024 (the kernels take
// any count), because every emulated thread costs a context switch per
// barrier.
const (
	threads = 256
	npart   = 8
	sms     = 2
)

func flat(n int) (C.uint, C.uint, C.uint) {
	g := (n + threads - 1) / threads
	g = max(1, min(g, 8*sms))
	return C.uint(g), threads, 1
}

// rowwise is cudaops': column tiles of 256 times row chunks, a wave of 8 blocks per SM.
func rowwise(rows, cols int) (C.uint, C.uint, C.uint) {
	tiles := max(1, (cols+threads-1)/threads)
	chunks := max(1, min(rows, 8*sms/tiles))
	return C.uint(tiles * chunks), threads, 1
}

func rowShape(rows int) (C.uint, C.uint, C.uint) { return C.uint(rows), threads, 1 }

// colShape is cudaops': a (COL_TILE, COL_ROWS) = (8, 128) block per 8 columns.
func colShape(cols int) (C.uint, C.uint, C.uint) { return C.uint(max(1, (cols+7)/8)), 8, 128 }

// f returns the address of x's first n elements, nil for a nil Buf.
func f(x nn.Buf, n int, what string) *C.float {
	if x == nil {
		return nil
	}
	h, ok := x.(nn.HostBuf)
	if !ok {
		panic(fmt.Sprintf("kemu: %s is a %T", what, x))
	}
	if len(h) < n {
		panic(fmt.Sprintf("kemu: %s needs %d elements, has %d", what, n, len(h)))
	}
	if len(h) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&h[0]))
}

// u is f for a kernel parameter of unsigned ints (nn.IndexBits slots).
func u(x nn.Buf, n int, what string) *C.uint { return (*C.uint)(unsafe.Pointer(f(x, n, what))) }

func (*Backend) Axpy(y nn.Buf, alpha float32, x nn.Buf, n int) {
	if n == 0 {
		return
	}
	gx, bx, by := flat(n)
	C.emu_axpy(gx, bx, by, f(y, n, "y"), C.float(alpha), f(x, n, "x"), C.longlong(n))
}

func (*Backend) Scale(x nn.Buf, n int, alpha float32) {
	if n == 0 {
		return
	}
	gx, bx, by := flat(n)
	C.emu_scale(gx, bx, by, f(x, n, "x"), C.float(alpha), C.longlong(n))
}

func (*Backend) Mul(x, y nn.Buf, n int) {
	if n == 0 {
		return
	}
	gx, bx, by := flat(n)
	C.emu_mul(gx, bx, by, f(x, n, "x"), f(y, n, "y"), C.longlong(n))
}

func (b *Backend) Dot(x, y nn.Buf, n int) float64 {
	if n == 0 {
		return 0
	}
	p := (*C.double)(unsafe.Pointer(&b.part[0]))
	C.emu_dot_partial(npart, threads, 1, p, f(x, n, "x"), f(y, n, "y"), C.longlong(n))
	C.emu_sum_partials(1, threads, 1, (*C.double)(unsafe.Pointer(&b.part[npart])), p, npart)
	return b.part[npart]
}

func (b *Backend) DotTo(dst, x, y nn.Buf, n int) {
	p := (*C.double)(unsafe.Pointer(&b.part[0]))
	C.emu_dot_partial(npart, threads, 1, p, f(x, n, "x"), f(y, n, "y"), C.longlong(n))
	C.emu_partials_to_f32(1, threads, 1, f(dst, 1, "dst"), p, npart)
}

func (*Backend) Mean(dst, x nn.Buf, n int) {
	C.emu_mean_of(1, threads, 1, f(dst, 1, "dst"), f(x, n, "x"), C.int(n))
}

func (b *Backend) ClipNorm(x nn.Buf, n int, maxNorm float32, norm nn.Buf) {
	p := (*C.double)(unsafe.Pointer(&b.part[0]))
	px := f(x, n, "x")
	C.emu_dot_partial(npart, threads, 1, p, px, px, C.longlong(n))
	gx, bx, by := flat(n)
	C.emu_clip_scale(gx, bx, by, px, C.longlong(n), p, npart, C.float(maxNorm), f(norm, 1, "norm"))
}

func (b *Backend) ClipCoef(coef, x nn.Buf, n int, maxNorm float32, norm nn.Buf) {
	p := (*C.double)(unsafe.Pointer(&b.part[0]))
	px := f(x, n, "x")
	C.emu_dot_partial(npart, threads, 1, p, px, px, C.longlong(n))
	C.emu_clip_coef(1, threads, 1, f(coef, 1, "coef"), p, npart, C.float(maxNorm), f(norm, 1, "norm"))
}

func (*Backend) CountEqual(dst, a, b nn.Buf, rows, cols int) {
	if rows == 0 {
		return
	}
	gx, bx, by := rowShape(rows)
	C.emu_count_equal(gx, bx, by, f(dst, rows, "dst"), f(a, rows*cols, "a"), f(b, cols, "b"), C.int(cols))
}

func (*Backend) MeanOthers(dst, src nn.Buf, views, n int) {
	if views < 2 {
		panic(fmt.Sprintf("kemu: MeanOthers of %d views", views))
	}
	if n == 0 {
		return
	}
	gx, bx, by := flat(n)
	C.emu_mean_others(gx, bx, by, f(dst, views*n, "dst"), f(src, views*n, "src"), C.int(views),
		C.float(1/float32(views-1)), C.longlong(n))
}

func (*Backend) CopyCols(dst nn.Buf, dstCols, dstOff int, src nn.Buf, srcCols, srcOff int, rows, cols int, beta float32) {
	if rows == 0 || cols == 0 {
		return
	}
	gx, bx, by := rowwise(rows, cols)
	C.emu_copy_cols(gx, bx, by, f(dst, (rows-1)*dstCols+dstOff+cols, "dst"), C.int(dstCols), C.int(dstOff),
		f(src, (rows-1)*srcCols+srcOff+cols, "src"), C.int(srcCols), C.int(srcOff), C.int(rows), C.int(cols), C.float(beta))
}

func (*Backend) GatherRows(dst, src nn.Buf, cols int, idx nn.Buf, n int) {
	if n*cols == 0 {
		return
	}
	gx, bx, by := rowShape(n)
	C.emu_gather_rows(gx, bx, by, f(dst, n*cols, "dst"), f(src, 0, "src"), C.int(cols), u(idx, n, "idx"),
		C.longlong(src.Len()/cols))
}

func (*Backend) FoldCols(dst nn.Buf, dstCols int, src nn.Buf, srcCols, rows, off int) {
	if rows*dstCols == 0 {
		return
	}
	gx, bx, by := rowwise(rows, dstCols)
	C.emu_fold_cols(gx, bx, by, f(dst, rows*dstCols, "dst"), C.int(dstCols), f(src, rows*srcCols, "src"), C.int(srcCols),
		C.int(rows), C.int(off))
}

func (*Backend) UnfoldCols(dst nn.Buf, dstCols int, src nn.Buf, srcCols, rows, off int, beta float32) {
	if rows*dstCols == 0 {
		return
	}
	gx, bx, by := rowwise(rows, dstCols)
	C.emu_unfold_cols(gx, bx, by, f(dst, rows*dstCols, "dst"), C.int(dstCols), f(src, rows*srcCols, "src"),
		C.int(srcCols), C.int(rows), C.int(off), C.float(beta))
}

func (*Backend) AddBiasLeakyReLU(x, bias nn.Buf, rows, cols int, slope float32) {
	if rows*cols == 0 {
		return
	}
	gx, bx, by := rowwise(rows, cols)
	C.emu_bias_lrelu(gx, bx, by, f(x, rows*cols, "x"), f(bias, cols, "bias"), C.int(rows), C.int(cols), C.float(slope))
}

func (*Backend) LeakyReLUBackward(dx, dy, y nn.Buf, n int, slope float32) {
	if n == 0 {
		return
	}
	gx, bx, by := flat(n)
	C.emu_lrelu_bwd(gx, bx, by, f(dx, n, "dx"), f(dy, n, "dy"), f(y, n, "y"), C.float(slope), C.longlong(n))
}

func (*Backend) ColSums(dst, x nn.Buf, rows, cols int, beta float32) {
	gx, bx, by := colShape(cols)
	C.emu_col_sums(gx, bx, by, f(dst, cols, "dst"), f(x, rows*cols, "x"), C.int(rows), C.int(cols), C.float(beta))
}

func (*Backend) BNStats(stats, x, runMean nn.Buf, rows, cols int) {
	gx, bx, by := colShape(cols)
	C.emu_bn_stats(gx, bx, by, f(stats, 2*cols+1, "stats"), f(x, rows*cols, "x"), f(runMean, cols, "runMean"),
		C.int(rows), C.int(cols))
}

func (*Backend) BNMoments(mean, variance, runMean, runVar, stats nn.Buf, cols int, momentum float32) {
	gx, bx, by := flat(cols)
	C.emu_bn_moments(gx, bx, by, f(mean, cols, "mean"), f(variance, cols, "variance"), f(runMean, cols, "runMean"),
		f(runVar, cols, "runVar"), f(stats, 2*cols+1, "stats"), C.int(cols), C.float(momentum))
}

func (*Backend) BNNormalize(y nn.Buf, ldy int, x, mean, variance, gamma, beta nn.Buf, rows, cols int, eps float32) {
	n := rows * cols
	if n == 0 {
		return
	}
	gx, bx, by := rowwise(rows, cols)
	C.emu_bn_normalize(gx, bx, by, f(y, (rows-1)*ldy+cols, "y"), C.int(ldy), f(x, n, "x"), f(mean, cols, "mean"), f(variance, cols, "variance"),
		f(gamma, cols, "gamma"), f(beta, cols, "beta"), C.int(rows), C.int(cols), C.float(eps))
}

func (*Backend) BNBackwardStats(stats, dgamma, dbeta, dy, x, mean, variance nn.Buf, rows, cols int, eps, beta float32) {
	gx, bx, by := colShape(cols)
	C.emu_bn_bwd_stats(gx, bx, by, f(stats, 2*cols+1, "stats"), f(dgamma, cols, "dgamma"), f(dbeta, cols, "dbeta"),
		f(dy, rows*cols, "dy"), f(x, rows*cols, "x"), f(mean, cols, "mean"), f(variance, cols, "variance"),
		C.int(rows), C.int(cols), C.float(eps), C.float(beta))
}

func (*Backend) BNBackward(dx, dy, x, mean, variance, gamma, stats nn.Buf, rows, cols int, eps, slope float32) {
	n := rows * cols
	if n == 0 {
		return
	}
	gx, bx, by := rowwise(rows, cols)
	C.emu_bn_backward(gx, bx, by, f(dx, n, "dx"), f(dy, n, "dy"), f(x, n, "x"), f(mean, cols, "mean"),
		f(variance, cols, "variance"), f(gamma, cols, "gamma"), f(stats, 2*cols+1, "stats"),
		C.int(rows), C.int(cols), C.float(eps), C.float(slope))
}

func (*Backend) DropoutMask(mask nn.Buf, rows, cols int, p float32, key nn.RNGKey, rowBase uint32, stepAt nn.Buf) {
	gx, bx, by := flat(rows * cols)
	C.emu_dropout_mask(gx, bx, by, f(mask, rows*cols, "mask"), C.int(rows), C.int(cols), C.float(p),
		C.ulonglong(key.Seed), C.uint(key.Step), C.uint(key.Stream), C.uint(rowBase), u(stepAt, 1, "stepAt"))
}

func (*Backend) SoftmaxCE(loss, dx, x, labels nn.Buf, rows, cols int, invT, scale, beta float32, scaleAt nn.Buf) {
	gx, bx, by := rowShape(rows)
	C.emu_softmax_ce(gx, bx, by, f(loss, rows, "loss"), f(dx, rows*cols, "dx"), f(x, rows*cols, "x"),
		f(labels, rows, "labels"), C.int(cols), C.float(invT), C.float(scale), C.float(beta), f(scaleAt, 1, "scaleAt"))
}

func (*Backend) Softmax(y, x nn.Buf, rows, cols int, invT float32) {
	gx, bx, by := rowShape(rows)
	C.emu_softmax(gx, bx, by, f(y, rows*cols, "y"), f(x, rows*cols, "x"), C.int(cols), C.float(invT))
}

func (*Backend) Argmax(dst, x nn.Buf, rows, cols int) {
	gx, bx, by := rowShape(rows)
	C.emu_argmax(gx, bx, by, f(dst, rows, "dst"), f(x, rows*cols, "x"), C.int(cols))
}

func (*Backend) SampleGumbel(dst, x nn.Buf, rows, cols int, invT float32, key nn.RNGKey, rowIndex, stepAt nn.Buf) {
	if rows == 0 {
		return
	}
	gx, bx, by := rowShape(rows)
	C.emu_sample_gumbel(gx, bx, by, f(dst, rows, "dst"), f(x, rows*cols, "x"), u(rowIndex, rows, "rowIndex"),
		C.int(cols), C.float(invT), C.ulonglong(key.Seed), C.uint(key.Step), C.uint(key.Stream), u(stepAt, 1, "stepAt"))
}

func (*Backend) Adam(w, g, m, v nn.Buf, n int, h nn.AdamHyper, sched, gscale nn.Buf) {
	if n == 0 {
		return
	}
	gx, bx, by := flat(n)
	C.emu_adam(gx, bx, by, f(w, n, "w"), f(g, n, "g"), f(m, n, "m"), f(v, n, "v"), C.longlong(n),
		C.float(h.StepSize), C.float(h.Beta1), C.float(h.Beta2), C.float(h.Eps), C.float(h.WeightDecay), C.float(h.BC2Sqrt),
		C.float(h.OneMinusBeta1), C.float(h.OneMinusBeta2), f(sched, 2, "sched"), f(gscale, 1, "gscale"))
}

// Philox runs the kernels' Philox4x32-10 on counters (i, i+1, i+2, i+3),
// i < n, with key k, returning the first output words.
func Philox(n int, k [2]uint32) []uint32 {
	out := make([]uint32, n)
	gx, bx, by := flat(n)
	C.emu_philox_test(gx, bx, by, (*C.uint)(unsafe.Pointer(&out[0])), C.uint(k[0]), C.uint(k[1]), C.int(n))
	return out
}

// ToBF16 runs the kernels' float-to-bfloat16 rounding.
func ToBF16(x []float32) []uint16 {
	out := make([]uint16, len(x))
	gx, bx, by := flat(len(x))
	C.emu_to_bf16(gx, bx, by, (*C.ushort)(unsafe.Pointer(&out[0])), (*C.float)(unsafe.Pointer(&x[0])), C.longlong(len(x)))
	return out
}
