package pretrained

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"mct/blas"
)

// Forward runs the network on n images x, stored NHWC (n×Size×Size×3 floats,
// already scaled as the network expects: see Preprocess), and returns the
// target layer's output, n×OutH×OutW×OutC. It uses all of GOMAXPROCS.
func (nt *Net) Forward(x []float32, n int) []float32 {
	if want := n * nt.Size * nt.Size * 3; len(x) != want {
		panic(fmt.Sprintf("pretrained: Forward of %d images at %d px needs %d floats, got %d", n, nt.Size, want, len(x)))
	}
	if n == 0 {
		return nil
	}
	// The parallelism is ours (tiles on GOMAXPROCS goroutines): a threaded
	// OpenBLAS underneath doubles the CPU time for no gain in wall time
	// (measured: 6.3 vs 11.4 ms CPU per MobileNetV2 image). Restore the CPU
	// backend's convention, one BLAS thread per GOMAXPROCS, afterwards.
	blas.SetThreads(1)
	defer blas.SetThreads(runtime.GOMAXPROCS(0))
	vals := make([][]float32, nt.nvals)
	vals[0] = x
	var free [][]float32
	get := func(size int) []float32 {
		best := -1
		for i, b := range free {
			if cap(b) >= size && (best < 0 || cap(b) < cap(free[best])) {
				best = i
			}
		}
		if best < 0 {
			return make([]float32, size)
		}
		b := free[best][:size]
		free = append(free[:best], free[best+1:]...)
		return b
	}
	for i, o := range nt.ops {
		y := get(n * o.outSh.size())
		if o.out == nt.out {
			// The result escapes to the caller: never a recycled buffer it
			// might share with a later call's scratch.
			y = make([]float32, n*o.outSh.size())
		}
		switch o.kind {
		case opConv:
			convGEMM(o, vals[o.in[0]], y, n)
		case opDepthwise:
			depthwise(o, vals[o.in[0]], y, n)
		case opAffine, opAct:
			affineAct(o, vals[o.in[0]], y)
		case opAdd:
			add(o, vals, y)
		case opConcat:
			concat(o, vals, y, n, nt.shapes)
		case opMaxPool, opAvgPool:
			poolOp(o, vals[o.in[0]], y, n)
		case opPad:
			pad(o, vals[o.in[0]], y, n)
		}
		vals[o.out] = y
		for _, v := range o.in {
			if v != 0 && nt.lastUse[v] == i && v != nt.out {
				free = append(free, vals[v])
				vals[v] = nil
			}
		}
	}
	if nt.out == 0 {
		return append([]float32(nil), x...)
	}
	return vals[nt.out]
}

// EmbedBatch is the number of images Embed runs through the network at once:
// enough rows for the late, small layers to keep both GEMM and all cores busy,
// few enough that InceptionV3's activations at 96 px stay near 100 MB.
const EmbedBatch = 32

// Embed runs Forward on n images in batches of EmbedBatch and averages the
// target output over its spatial positions (global average pooling), giving
// the n×OutC view matrix.
func (nt *Net) Embed(x []float32, n int) []float32 {
	per := nt.Size * nt.Size * 3
	if len(x) != n*per {
		panic(fmt.Sprintf("pretrained: Embed of %d images at %d px needs %d floats, got %d", n, nt.Size, n*per, len(x)))
	}
	out := make([]float32, n*nt.OutC)
	hw := nt.OutH * nt.OutW
	for b0 := 0; b0 < n; b0 += EmbedBatch {
		b1 := min(b0+EmbedBatch, n)
		y := nt.Forward(x[b0*per:b1*per], b1-b0)
		for i := b0; i < b1; i++ {
			img := y[(i-b0)*hw*nt.OutC:]
			dst := out[i*nt.OutC : (i+1)*nt.OutC]
			acc := make([]float64, nt.OutC)
			for p := range hw {
				for c, v := range img[p*nt.OutC : (p+1)*nt.OutC] {
					acc[c] += float64(v)
				}
			}
			for c := range dst {
				dst[c] = float32(acc[c] / float64(hw))
			}
		}
	}
	return out
}

// parallel runs fn over [0, n) in chunks of at least grain, on GOMAXPROCS
// goroutines pulling chunks from a shared counter so uneven chunks balance.
func parallel(n, grain int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if grain < 1 {
		grain = 1
	}
	chunk := max(grain, (n+4*workers-1)/(4*workers))
	tasks := (n + chunk - 1) / chunk
	if workers == 1 || tasks <= 1 {
		fn(0, n)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, tasks) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				t := int(next.Add(1)) - 1
				if t >= tasks {
					return
				}
				fn(t*chunk, min((t+1)*chunk, n))
			}
		}()
	}
	wg.Wait()
}

// scratch holds per-goroutine im2col tiles between calls.
var scratch = sync.Pool{New: func() any { return new([]float32) }}

// convGEMM computes a convolution as GEMM: each output pixel is one row of
// the im2col matrix (kh·kw·cin patch values, zero outside the image) times the
// (kh·kw·cin)×cout kernel. Rows are split into tiles so the patch matrix of a
// tile stays in cache and the tiles run in parallel; a 1×1 stride-1 unpadded
// convolution reads the NHWC input directly as its patch matrix.
func convGEMM(o *op, x, y []float32, n int) {
	in, out := o.inShape, o.outSh
	k := o.kh * o.kw * in.c
	rows := n * out.h * out.w
	direct := o.kh == 1 && o.kw == 1 && o.sh == 1 && o.sw == 1 && o.padT|o.padB|o.padL|o.padR == 0
	// Around 1 MB of patch per tile, and at least 8 tiles so small late layers
	// still spread over the cores. The tiling depends on the shapes only, not on
	// the number of cores, so results are the same bits on any machine size.
	tile := min(max(64, (1<<18)/k), 2048, max(16, (rows+7)/8))
	tiles := (rows + tile - 1) / tile
	parallel(tiles, 1, func(t0, t1 int) {
		var buf *[]float32
		if !direct {
			buf = scratch.Get().(*[]float32)
			defer scratch.Put(buf)
			if cap(*buf) < tile*k {
				*buf = make([]float32, tile*k)
			}
		}
		for t := t0; t < t1; t++ {
			r0, r1 := t*tile, min((t+1)*tile, rows)
			var a []float32
			if direct {
				a = x[r0*k : r1*k]
			} else {
				a = (*buf)[:(r1-r0)*k]
				im2col(o, x, a, r0, r1)
			}
			c := y[r0*out.c : r1*out.c]
			blas.Sgemm(false, false, r1-r0, out.c, k, 1, a, k, o.w, out.c, 0, c, out.c)
			epilogue(c, o.bias, o.act, o.max, out.c)
		}
	})
}

// im2col writes the patches of output rows [r0, r1) into a.
func im2col(o *op, x, a []float32, r0, r1 int) {
	in, out := o.inShape, o.outSh
	cin := in.c
	k := o.kh * o.kw * cin
	for r := r0; r < r1; r++ {
		b := r / (out.h * out.w)
		oy := r / out.w % out.h
		ox := r % out.w
		row := a[(r-r0)*k : (r-r0+1)*k]
		img := x[b*in.size():]
		for ky := range o.kh {
			iy := oy*o.sh - o.padT + ky
			seg := row[ky*o.kw*cin : (ky+1)*o.kw*cin]
			if iy < 0 || iy >= in.h {
				clear(seg)
				continue
			}
			ix0 := ox*o.sw - o.padL
			if ix0 >= 0 && ix0+o.kw <= in.w {
				// The whole kernel row lies inside: one contiguous copy.
				copy(seg, img[(iy*in.w+ix0)*cin:(iy*in.w+ix0+o.kw)*cin])
				continue
			}
			for kx := range o.kw {
				ix := ix0 + kx
				d := seg[kx*cin : (kx+1)*cin]
				if ix < 0 || ix >= in.w {
					clear(d)
				} else {
					copy(d, img[(iy*in.w+ix)*cin:(iy*in.w+ix+1)*cin])
				}
			}
		}
	}
}

// epilogue adds the per-channel bias and applies the activation in place.
func epilogue(c, bias []float32, act actKind, mx float32, ch int) {
	if bias == nil && act == actNone {
		return
	}
	for p := 0; p < len(c); p += ch {
		row := c[p : p+ch]
		if bias != nil {
			bias := bias[:len(row)]
			for i := range row {
				row[i] += bias[i]
			}
		}
		activate(row, act, mx)
	}
}

func activate(row []float32, act actKind, mx float32) {
	switch act {
	case actReLU:
		for i, v := range row {
			if v < 0 {
				row[i] = 0
			}
		}
	case actReLUMax:
		for i, v := range row {
			row[i] = min(max(v, 0), mx)
		}
	}
}

// depthwise computes a depthwise convolution (depth multiplier 1) directly:
// per output pixel, the kernel taps accumulate whole channel vectors, which
// is already memory-bound, so im2col would only add traffic.
func depthwise(o *op, x, y []float32, n int) {
	in, out := o.inShape, o.outSh
	c := in.c
	parallel(n*out.h, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			b, oy := r/out.h, r%out.h
			img := x[b*in.size():]
			for ox := range out.w {
				dst := y[((b*out.h+oy)*out.w+ox)*c:][:c]
				if o.bias != nil {
					copy(dst, o.bias)
				} else {
					clear(dst)
				}
				for ky := range o.kh {
					iy := oy*o.sh - o.padT + ky
					if iy < 0 || iy >= in.h {
						continue
					}
					for kx := range o.kw {
						ix := ox*o.sw - o.padL + kx
						if ix < 0 || ix >= in.w {
							continue
						}
						src := img[(iy*in.w+ix)*c:][:c]
						w := o.w[(ky*o.kw+kx)*c:][:c]
						for i := range dst {
							dst[i] += src[i] * w[i]
						}
					}
				}
				activate(dst, o.act, o.max)
			}
		}
	})
}

// affineAct applies an unfolded BatchNormalization (scale w, shift bias) and/or
// an activation.
func affineAct(o *op, x, y []float32) {
	ch := o.outSh.c
	parallel(len(x)/ch, 256, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			src, dst := x[p*ch:(p+1)*ch], y[p*ch:(p+1)*ch]
			if o.w != nil {
				for i := range dst {
					dst[i] = src[i]*o.w[i] + o.bias[i]
				}
			} else {
				copy(dst, src)
			}
			activate(dst, o.act, o.max)
		}
	})
}

func add(o *op, vals [][]float32, y []float32) {
	parallel(len(y), 1<<14, func(lo, hi int) {
		copy(y[lo:hi], vals[o.in[0]][lo:hi])
		for _, v := range o.in[1:] {
			src := vals[v][lo:hi]
			dst := y[lo:hi]
			for i := range dst {
				dst[i] += src[i]
			}
		}
	})
}

func concat(o *op, vals [][]float32, y []float32, n int, shapes []shape) {
	pix := n * o.outSh.h * o.outSh.w
	parallel(pix, 256, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			dst := y[p*o.outSh.c:]
			off := 0
			for _, v := range o.in {
				c := shapes[v].c
				copy(dst[off:off+c], vals[v][p*c:(p+1)*c])
				off += c
			}
		}
	})
}

// poolOp computes max or average pooling. Padded positions are excluded, as in
// TensorFlow: they never win a max and do not count in an average.
func poolOp(o *op, x, y []float32, n int) {
	in, out := o.inShape, o.outSh
	c := in.c
	parallel(n*out.h, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			b, oy := r/out.h, r%out.h
			img := x[b*in.size():]
			y0, y1 := max(oy*o.sh-o.padT, 0), min(oy*o.sh-o.padT+o.kh, in.h)
			for ox := range out.w {
				x0, x1 := max(ox*o.sw-o.padL, 0), min(ox*o.sw-o.padL+o.kw, in.w)
				dst := y[((b*out.h+oy)*out.w+ox)*c:][:c]
				if o.kind == opMaxPool {
					for i := range dst {
						dst[i] = float32(math.Inf(-1))
					}
				} else {
					clear(dst)
				}
				for iy := y0; iy < y1; iy++ {
					for ix := x0; ix < x1; ix++ {
						src := img[(iy*in.w+ix)*c:][:c]
						if o.kind == opMaxPool {
							for i := range dst {
								dst[i] = max(dst[i], src[i])
							}
						} else {
							for i := range dst {
								dst[i] += src[i]
							}
						}
					}
				}
				if o.kind == opAvgPool {
					inv := 1 / float32((y1-y0)*(x1-x0))
					for i := range dst {
						dst[i] *= inv
					}
				}
			}
		}
	})
}

func pad(o *op, x, y []float32, n int) {
	in, out := o.inShape, o.outSh
	clear(y)
	parallel(n*in.h, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			b, iy := r/in.h, r%in.h
			src := x[(b*in.h+iy)*in.w*in.c:][:in.w*in.c]
			copy(y[((b*out.h+iy+o.padT)*out.w+o.padL)*in.c:], src)
		}
	})
}
