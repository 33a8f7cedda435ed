//go:build cuda

package cudaops

import (
	"fmt"
	"runtime"

	"gorgonia.org/cu"

	"mct/cudaops/cudalib"
)

// GemmRate measures cuBLAS's matrix rate on an m×n×k product, in FLOP/s
// (2mnk per product), timed with CUDA events over reps products after a
// warm-up. With native, A and B are stored in bf16 (the card's bf16 tensor
// core rate, the roofline the benchmark reports against); otherwise they are
// fp32 and the backend's precision applies (what the probe's GEMMs get).
func (b *Backend) GemmRate(m, n, k, reps int, native bool) (float64, error) {
	b.notRecording("GemmRate")
	b.enter()
	defer runtime.UnlockOSThread()
	alloc := func(elems int) (cu.DevicePtr, error) { return cu.MemAlloc(int64(4 * elems)) }
	a, err := alloc(m * k)
	if err != nil {
		return 0, fmt.Errorf("cudaops: GemmRate: %v", err)
	}
	defer cu.MemFree(a)
	bb, err := alloc(k * n)
	if err != nil {
		return 0, fmt.Errorf("cudaops: GemmRate: %v", err)
	}
	defer cu.MemFree(bb)
	c, err := alloc(m * n)
	if err != nil {
		return 0, fmt.Errorf("cudaops: GemmRate: %v", err)
	}
	defer cu.MemFree(c)
	// Non-trivial values: all-zero inputs draw less power and can run faster.
	check("GemmRate fill", cu.MemsetD32Async(a, uint(0x3f000001), int64(m*k), b.stream))
	check("GemmRate fill", cu.MemsetD32Async(bb, uint(0xbe800003), int64(k*n), b.stream))
	typ, comp := cudalib.R32F, b.prec.compute()
	if native {
		a16, err := alloc((m*k + 1) / 2)
		if err != nil {
			return 0, fmt.Errorf("cudaops: GemmRate: %v", err)
		}
		defer cu.MemFree(a16)
		b16, err := alloc((k*n + 1) / 2)
		if err != nil {
			return 0, fmt.Errorf("cudaops: GemmRate: %v", err)
		}
		defer cu.MemFree(b16)
		g, t := b.flat(b.k.toBF16, m*k)
		b.launch(b.k.toBF16, g, t, a16, a, int64(m*k))
		g, t = b.flat(b.k.toBF16, k*n)
		b.launch(b.k.toBF16, g, t, b16, bb, int64(k*n))
		a, bb = a16, b16
		typ, comp = cudalib.R16BF, cudalib.Compute32F
	}
	gemm := func() error {
		return b.blas.GemmRowMajor(false, false, m, n, k, 1, uintptr(a), typ, k, uintptr(bb), typ, n,
			0, uintptr(c), cudalib.R32F, n, comp)
	}
	for i := 0; i < 3; i++ {
		if err := gemm(); err != nil {
			return 0, err
		}
	}
	start, err := cu.MakeEvent(cu.DefaultEvent)
	if err != nil {
		return 0, err
	}
	defer cu.DestroyEvent(&start)
	end, err := cu.MakeEvent(cu.DefaultEvent)
	if err != nil {
		return 0, err
	}
	defer cu.DestroyEvent(&end)
	check("record", start.Record(b.stream))
	for i := 0; i < reps; i++ {
		if err := gemm(); err != nil {
			return 0, err
		}
	}
	check("record", end.Record(b.stream))
	check("synchronize", end.Synchronize())
	ms, err := start.Elapsed(end)
	if err != nil {
		return 0, err
	}
	return 2 * float64(m) * float64(n) * float64(k) * float64(reps) / (ms / 1e3), nil
}
