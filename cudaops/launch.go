//go:build cuda

package cudaops

import (
	"fmt"
	"math"
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
}

func (k *kernels) load(m cu.Module) error {
	byName := map[string]*cu.Function{
		"scale": &k.scale, "axpy": &k.axpy, "mul": &k.mul, "copy_cols": &k.copyCols,
		"bias_lrelu": &k.biasLReLU, "lrelu_bwd": &k.lreluBwd, "col_sums": &k.colSums,
		"bn_stats": &k.bnStats, "bn_bwd_stats": &k.bnBwdStats, "bn_moments": &k.bnMoments,
		"bn_normalize": &k.bnNorm, "bn_backward": &k.bnBackward, "dot_partial": &k.dotPartial,
		"sum_partials": &k.sumPartials, "philox_test": &k.philoxTest, "dropout_mask": &k.dropoutMask,
		"softmax_ce": &k.softmaxCE, "softmax": &k.softmax, "argmax": &k.argmax,
		"sample_gumbel": &k.sampleGB, "adam": &k.adam, "to_bf16": &k.toBF16,
		"partials_to_f32": &k.partialsF32, "clip_scale": &k.clipScale, "mean_of": &k.meanOf,
		"count_equal": &k.countEqual, "mean_others": &k.meanOthers,
		"fold_cols": &k.foldCols, "unfold_cols": &k.unfoldCols,
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
	}
	return nil
}

// dim is a launch shape.
type dim struct{ x, y int }

const threads = 256

// flat is the shape of an elementwise kernel over n elements: enough blocks
// to fill the GPU, the grid-stride loop does the rest.
func (b *Backend) flat(n int) (dim, dim) {
	g := (n + threads - 1) / threads
	if g > 8*b.sms {
		g = 8 * b.sms
	}
	if g < 1 {
		g = 1
	}
	return dim{g, 1}, dim{threads, 1}
}

// rowShape runs one block per row.
func rowShape(rows int) (dim, dim) { return dim{rows, 1}, dim{threads, 1} }

// colShape runs a (32, 32) block per 32 columns.
func colShape(cols int) (dim, dim) { return dim{(cols + 31) / 32, 1}, dim{32, 32} }

// launch runs f on the backend's stream. Arguments are passed by their Go
// type, which must match the kernel's parameter: cu.DevicePtr for pointers,
// int32 for int, int64 for long long, uint32 / uint64 for the unsigned
// types, float32 for float. The caller has called enter.
func (b *Backend) launch(f cu.Function, grid, block dim, args ...any) {
	// cu's Launch reads eight bytes per argument; a 4-byte parameter takes
	// the low half of its slot (little-endian).
	var slots [16]uint64
	var ptrs [16]unsafe.Pointer
	if len(args) > len(slots) {
		panic("cudaops: too many kernel arguments")
	}
	for i, a := range args {
		switch v := a.(type) {
		case cu.DevicePtr:
			slots[i] = uint64(v)
		case int32:
			slots[i] = uint64(uint32(v))
		case int64:
			slots[i] = uint64(v)
		case uint32:
			slots[i] = uint64(v)
		case uint64:
			slots[i] = v
		case float32:
			slots[i] = uint64(math.Float32bits(v))
		default:
			panic(fmt.Sprintf("cudaops: kernel argument %d has type %T", i, a))
		}
		ptrs[i] = unsafe.Pointer(&slots[i])
	}
	err := f.Launch(grid.x, grid.y, 1, block.x, block.y, 1, 0, b.stream, ptrs[:len(args)])
	check("launch", err)
	b.launches++
}

// Launches is the number of operations queued on the stream so far: kernels, cuBLAS
// GEMMs, memsets and device-to-device copies (not host transfers). Each costs a few
// microseconds of launch overhead whatever its size, which is what bounds a small
// update; `mct bench` reports it per update.
func (b *Backend) Launches() int64 { return b.launches }
