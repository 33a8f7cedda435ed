//go:build cuda

package cudaops

import (
	"fmt"
	"math"
	"os"
	"testing"

	"gorgonia.org/cu"

	"mct/cudaops/backendtest"
	"mct/nn"
)

// The tests run every operation on the GPU and on the CPU backend with the
// same random inputs and compare: within 1e-5 (max-norm relative) in FP32
// mode, 1e-2 for GEMMs in BF16 mode, and exactly where the result is a choice
// (argmax, sampling, dropout masks, the RNG). The same comparisons run without
// a GPU on the kernels' CPU emulation (cudaops/kemu).

var gpu *Backend

func TestMain(m *testing.M) {
	// cu's package init has already called cuInit, which exits the process
	// when no driver is installed; a driver without a GPU lands here.
	if n, err := cu.NumDevices(); err != nil || n == 0 {
		fmt.Printf("cudaops: SKIP all tests: no CUDA device (count %d, %v)\n", n, err)
		os.Exit(0)
	}
	var err error
	if gpu, err = New(Options{Device: 0, Precision: FP32}); err != nil {
		fmt.Println("cudaops: FAIL: a CUDA device is present but the backend does not open:", err)
		os.Exit(1)
	}
	i := gpu.Info()
	fmt.Printf("cudaops: %s cc %s, driver %d, NVRTC %s (%s), cuBLAS %s (%d)\n",
		i.Device, i.CC, i.Driver, i.NVRTC, i.Arch, i.CUBLAS, i.CUBLASVersion)
	code := m.Run()
	gpu.Close()
	os.Exit(code)
}

// TestBackend runs every operation and a probe step on the GPU and on the CPU
// backend and compares them (cudaops/backendtest).
func TestBackend(t *testing.T) {
	mode := func(p Precision, tol float64) backendtest.GemmMode {
		return backendtest.GemmMode{Name: p.String(), Tol: tol, Set: func() { gpu.SetPrecision(p) }}
	}
	backendtest.Run(t, gpu, backendtest.Options{
		Tol:       1e-5,
		GemmModes: []backendtest.GemmMode{mode(FP32, 1e-5), mode(TF32, 5e-3), mode(BF16, 1e-2)},
	})
}

func TestPhilox(t *testing.T) {
	k := [2]uint32{0xa4093822, 0x299f31d0}
	got := gpu.philox(4096, k)
	for i, v := range got {
		u := uint32(i)
		want := nn.Philox4x32([4]uint32{u, u + 1, u + 2, u + 3}, k)[0]
		if v != want {
			t.Fatalf("counter %d: GPU %08x, CPU %08x", i, v, want)
		}
	}
}

func TestGemmRate(t *testing.T) {
	for _, native := range []bool{true, false} {
		r, err := gpu.GemmRate(512, 512, 512, 3, native)
		if err != nil || !(r > 1e9) || math.IsInf(r, 0) {
			t.Errorf("GemmRate(native=%v) = %g FLOP/s, %v", native, r, err)
		}
	}
}

// TestAllocReuse: a freed buffer comes back zeroed to the next Alloc of its
// length, without a trip to the driver.
func TestAllocReuse(t *testing.T) {
	x := gpu.Alloc(1000)
	gpu.Fill(x, 1000, 3)
	p := Ptr(x)
	gpu.Free(x)
	y := gpu.Alloc(1000)
	defer gpu.Free(y)
	if Ptr(y) != p {
		t.Errorf("Alloc after Free got new memory %#x, cached %#x", Ptr(y), p)
	}
	h := make([]float32, 1000)
	gpu.Download(h, y)
	for i, v := range h {
		if v != 0 {
			t.Fatalf("reused buffer [%d] = %g, want 0", i, v)
		}
	}
}
