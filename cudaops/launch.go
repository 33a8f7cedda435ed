//go:build cuda

package cudaops

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"gorgonia.org/cu"

	"mct/cudaops/cudalib"
)

// kernels holds the entry points of cudalib.Kernels.
type kernels struct {
	scale, axpy, mul, copyCols, biasLReLU, lreluBwd   cu.Function
	colSums, bnStats, bnBwdStats, bnMoments, bnNorm   cu.Function
	bnBackward, dotPartial, sumPartials, philoxTest   cu.Function
	dropoutMask, softmaxCE, softmax, argmax, sampleGB cu.Function
	adam, toBF16, partialsF32, clipScale, meanOf      cu.Function
	countEqual, meanOthers, foldCols, unfoldCols      cu.Function
	gatherRows, clipCoef                              cu.Function
	// names maps every entry point back to its name, for messages.
	names map[cu.Function]string
	// wave is, per entry point, how many blocks of threads the whole GPU runs at once:
	// the grid of an elementwise kernel (flat).
	wave map[cu.Function]int
	// occErr is the first failed occupancy query (those kernels got 8 blocks per SM);
	// TestWaves fails on it, so a guess is never taken for the driver's count.
	occErr error
}

// load binds the entry points of m and sizes their waves on a GPU of sms
// multiprocessors.
func (k *kernels) load(m cu.Module, sms int) error {
	byName := map[string]*cu.Function{
		"scale": &k.scale, "axpy": &k.axpy, "mul": &k.mul, "copy_cols": &k.copyCols,
		"bias_lrelu": &k.biasLReLU, "lrelu_bwd": &k.lreluBwd, "col_sums": &k.colSums,
		"bn_stats": &k.bnStats, "bn_bwd_stats": &k.bnBwdStats, "bn_moments": &k.bnMoments,
		"bn_normalize": &k.bnNorm, "bn_backward": &k.bnBackward, "dot_partial": &k.dotPartial,
		"sum_partials": &k.sumPartials, "philox_test": &k.philoxTest, "dropout_mask": &k.dropoutMask,
		"softmax_ce": &k.softmaxCE, "softmax": &k.softmax, "argmax": &k.argmax,
		"sample_gumbel": &k.sampleGB, "adam": &k.adam, "to_bf16": &k.toBF16,
		"partials_to_f32": &k.partialsF32, "clip_scale": &k.clipScale, "clip_coef": &k.clipCoef, "mean_of": &k.meanOf,
		"count_equal": &k.countEqual, "mean_others": &k.meanOthers,
		"fold_cols": &k.foldCols, "unfold_cols": &k.unfoldCols, "gather_rows": &k.gatherRows,
	}
	if len(byName) != len(cudalib.KernelNames) {
		return fmt.Errorf("cudaops: %d kernels bound, cudalib lists %d", len(byName), len(cudalib.KernelNames))
	}
	for _, name := range cudalib.KernelNames {
		f, ok := byName[name]
		if !ok {
			return fmt.Errorf("cudaops: kernel %s has no binding", name)
		}
		fn, err := m.Function(name)
		if err != nil {
			return fmt.Errorf("cudaops: kernel %s: %v", name, err)
		}
		*f = fn
		if k.names == nil {
			k.names, k.wave = map[cu.Function]string{}, map[cu.Function]int{}
		}
		k.names[fn] = name
		// As many blocks as fit the SMs at once, so that no second, partial wave runs
		// after the first with a fraction of the loads in flight: Adam's 37 registers a
		// thread leave room for 6 blocks of 256 on an SM, not 8. 8 (2048 threads, the
		// most an SM holds) if the driver cannot say.
		per, err := fn.MaxActiveBlocksPerMultiProcessor(threads, 0)
		if err != nil || per < 1 {
			if k.occErr == nil {
				k.occErr = fmt.Errorf("cudaops: occupancy of kernel %s: %d blocks, %v", name, per, err)
			}
			per = 8
		}
		k.wave[fn] = per * sms
	}
	return nil
}

// dim is a launch shape.
type dim struct{ x, y int }

const threads = 256

// flat is the shape of the elementwise kernel f over n elements: one wave of
// blocks that fills the GPU, the grid-stride loop does the rest.
func (b *Backend) flat(f cu.Function, n int) (dim, dim) {
	g := max(1, min((n+threads-1)/threads, b.k.wave[f]))
	return dim{g, 1}, dim{threads, 1}
}

// rowwise is the shape of a row-wise kernel f (COLUMN_SETUP in kernels.cu) over
// a rows×cols matrix: its column tiles of 256, times as many row chunks as make
// one wave of blocks (at least one, at most rows).
func (b *Backend) rowwise(f cu.Function, rows, cols int) (dim, dim) {
	tiles := max(1, (cols+threads-1)/threads)
	chunks := max(1, min(rows, b.k.wave[f]/tiles))
	return dim{tiles * chunks, 1}, dim{threads, 1}
}

// rowShape runs one block per row.
func rowShape(rows int) (dim, dim) { return dim{rows, 1}, dim{threads, 1} }

// colShape runs a (COL_TILE, COL_ROWS) = (8, 128) block per 8 columns (kernels.cu).
func colShape(cols int) (dim, dim) { return dim{(cols + 7) / 8, 1}, dim{8, 128} }

// opKind says what an op queues on the stream.
type opKind uint8

const (
	opKernel opKind = iota // a kernel: fn, grid, block, args[:nargs]
	opGemm                 // a cuBLAS GEMM: args as in gemmOp
	opMemset               // cuMemsetD32Async: pointer, value bits, count
	opCopy                 // cuMemcpyDtoDAsync: destination, source, bytes
)

// op is one stream operation with all its arguments, as values: the backend's methods
// build ops and pass them to do, which issues them, or, inside Record, collects them.
// Two ops are equal exactly when they would do the same thing, which is how Record
// decides whether a recorded graph may be replayed.
type op struct {
	kind        opKind
	fn          cu.Function
	grid, block dim
	nargs       int
	args        [16]uint64
}

// launch queues kernel f. Arguments are passed by their Go type, which must match the
// kernel's parameter: cu.DevicePtr for pointers, int32 for int, int64 for long long,
// uint32 / uint64 for the unsigned types, float32 for float. The caller has called
// enter.
func (b *Backend) launch(f cu.Function, grid, block dim, args ...any) {
	o := op{kind: opKernel, fn: f, grid: grid, block: block, nargs: len(args)}
	if len(args) > len(o.args) {
		panic("cudaops: too many kernel arguments")
	}
	// cu's Launch reads eight bytes per argument; a 4-byte parameter takes the low
	// half of its slot (little-endian).
	for i, a := range args {
		switch v := a.(type) {
		case cu.DevicePtr:
			o.args[i] = uint64(v)
		case int32:
			o.args[i] = uint64(uint32(v))
		case int64:
			o.args[i] = uint64(v)
		case uint32:
			o.args[i] = uint64(v)
		case uint64:
			o.args[i] = v
		case float32:
			o.args[i] = uint64(math.Float32bits(v))
		default:
			panic(fmt.Sprintf("cudaops: kernel argument %d has type %T", i, a))
		}
	}
	b.do(o)
}

// kernel is launch for a method whose only operation is this kernel: it makes the
// context current for the call (enter) itself.
func (b *Backend) kernel(f cu.Function, grid, block dim, args ...any) {
	b.enter()
	defer runtime.UnlockOSThread()
	b.launch(f, grid, block, args...)
}

// memset queues x[0:n] = the 32-bit pattern bits.
func (b *Backend) memset(x cu.DevicePtr, bits uint32, n int) {
	b.do(op{kind: opMemset, args: [16]uint64{uint64(x), uint64(bits), uint64(n)}})
}

// copyD queues a device-to-device copy of bytes.
func (b *Backend) copyD(dst, src cu.DevicePtr, bytes int) {
	b.do(op{kind: opCopy, args: [16]uint64{uint64(dst), uint64(src), uint64(bytes)}})
}

// gemmOp queues cudalib.Handle.GemmRowMajor on fp32 operands with the backend's
// precision.
func (b *Backend) gemmOp(tA, tB bool, m, n, k int, alpha float32, a cu.DevicePtr, lda int, bb cu.DevicePtr, ldb int,
	beta float32, c cu.DevicePtr, ldc int) {
	flag := func(t bool) uint64 {
		if t {
			return 1
		}
		return 0
	}
	b.do(op{kind: opGemm, args: [16]uint64{flag(tA), flag(tB), uint64(m), uint64(n), uint64(k),
		uint64(math.Float32bits(alpha)), uint64(a), uint64(lda), uint64(bb), uint64(ldb),
		uint64(math.Float32bits(beta)), uint64(c), uint64(ldc), uint64(b.prec.compute())}})
}

// do issues o on the stream, or adds it to the recording under way (Record).
func (b *Backend) do(o op) {
	if b.rec != nil {
		b.rec.ops = append(b.rec.ops, o)
		return
	}
	b.issueCounted(o)
}

// issueCounted issues o on the stream and counts it (Launches); the operation is named
// (describe) only when it fails, not on every launch. The caller has called enter.
func (b *Backend) issueCounted(o op) {
	if err := b.issue(o); err != nil {
		check(b.describe(o), err)
	}
	b.launches++
}

// issue queues o on the stream (or, under stream capture, adds it to the graph being
// captured). The caller has called enter.
func (b *Backend) issue(o op) error {
	a := &o.args
	switch o.kind {
	case opKernel:
		var ptrs [16]unsafe.Pointer
		for i := 0; i < o.nargs; i++ {
			ptrs[i] = unsafe.Pointer(&a[i])
		}
		return o.fn.Launch(o.grid.x, o.grid.y, 1, o.block.x, o.block.y, 1, 0, b.stream, ptrs[:o.nargs])
	case opGemm:
		f32 := func(u uint64) float32 { return math.Float32frombits(uint32(u)) }
		return b.blas.GemmRowMajor(a[0] == 1, a[1] == 1, int(a[2]), int(a[3]), int(a[4]), f32(a[5]),
			uintptr(a[6]), cudalib.R32F, int(a[7]), uintptr(a[8]), cudalib.R32F, int(a[9]),
			f32(a[10]), uintptr(a[11]), cudalib.R32F, int(a[12]), cudalib.ComputeType(a[13]))
	case opMemset:
		return cu.MemsetD32Async(cu.DevicePtr(a[0]), uint(a[1]), int64(a[2]), b.stream)
	case opCopy:
		return cu.MemcpyDtoDAsync(cu.DevicePtr(a[0]), cu.DevicePtr(a[1]), int64(a[2]), b.stream)
	}
	return fmt.Errorf("op kind %d", o.kind)
}

// describe names o for messages: the kernel's name, or what the operation is.
func (b *Backend) describe(o op) string {
	switch o.kind {
	case opKernel:
		if name, ok := b.k.names[o.fn]; ok {
			return "kernel " + name
		}
		return "kernel"
	case opGemm:
		if o.args[12] != o.args[3] { // ldc ≠ n: GemmStrided's product into a block of C
			return fmt.Sprintf("Gemm %dx%dx%d into rows of %d", o.args[2], o.args[3], o.args[4], o.args[12])
		}
		return fmt.Sprintf("Gemm %dx%dx%d", o.args[2], o.args[3], o.args[4])
	case opMemset:
		return fmt.Sprintf("memset of %d", o.args[2])
	}
	return fmt.Sprintf("device copy of %d bytes", o.args[2])
}

// Launches is the number of operations queued on the stream so far: kernels, cuBLAS
// GEMMs, memsets and device-to-device copies (not host transfers); a replayed CUDA
// graph counts as one. Each costs a few microseconds of launch overhead whatever its
// size, which is what bounds a small update; `mct bench` reports it per update.
func (b *Backend) Launches() int64 { return b.launches }
