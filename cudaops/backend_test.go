//go:build cuda

package cudaops

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"testing"
	"time"

	"gorgonia.org/cu"

	"mct/nn"
	"mct/nn/nntest"
)

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

// TestBackend runs nn's backend contract suite (nn/nntest) on the GPU: every
// operation and probe steps against the CPU backend with the same inputs, exactly
// where the result is a choice (argmax, sampling, dropout masks, the RNG), within
// 1e-6 or 1e-5 of scale elsewhere, GEMMs in each precision within its own
// tolerance. The same suite runs without a GPU on the kernels' CPU emulation
// (cudaops/kemu).
func TestBackend(t *testing.T) {
	mode := func(p Precision, tol float64) nntest.GemmMode {
		return nntest.GemmMode{Name: p.String(), Tol: tol, Set: func() { gpu.SetPrecision(p) }}
	}
	nntest.Conformance(t, gpu, nntest.Options{
		GemmModes: []nntest.GemmMode{mode(FP32, 1e-5), mode(TF32, 5e-3), mode(BF16, 1e-2)},
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

// TestWaves: every elementwise grid is one wave from the driver's occupancy, between
// 1 and 8 blocks of 256 threads per SM (an SM holds at most 2048 threads); logged for
// the kernels with the most registers, whose wave may be smaller than 8 per SM.
func TestWaves(t *testing.T) {
	if gpu.k.occErr != nil {
		t.Error(gpu.k.occErr)
	}
	for fn, name := range gpu.k.names {
		w := gpu.k.wave[fn]
		if w < gpu.sms || w > 8*gpu.sms {
			t.Errorf("%s: a wave of %d blocks on %d SMs", name, w, gpu.sms)
		}
		switch name {
		case "adam", "bn_backward", "bn_normalize":
			t.Logf("%s: %d blocks of %d threads per SM", name, w/gpu.sms, threads)
		}
	}
}

// TestAllocReuse: a freed buffer comes back zeroed to the next Alloc of its
// length, without a trip to the driver.
func TestAllocReuse(t *testing.T) {
	x := gpu.Alloc(1000)
	gpu.Fill(x, 1000, 3)
	p := dev(x).ptr
	gpu.Free(x)
	y := gpu.Alloc(1000)
	defer gpu.Free(y)
	if dev(y).ptr != p {
		t.Errorf("Alloc after Free got new memory %#x, cached %#x", dev(y).ptr, p)
	}
	h := make([]float32, 1000)
	gpu.Download(h, y)
	for i, v := range h {
		if v != 0 {
			t.Fatalf("reused buffer [%d] = %g, want 0", i, v)
		}
	}
}

// TestUploadDoesNotWait: uploads queued behind long GPU work return before that work
// ends (from pageable memory the driver would first drain the stream). Two uploads can
// be in flight at once (the two staging buffers); a third waits for the first.
func TestUploadDoesNotWait(t *testing.T) {
	const n = 4096
	gpu.SetPrecision(FP32)
	a, c, small := gpu.Alloc(n*n), gpu.Alloc(n*n), gpu.Alloc(3)
	defer gpu.Free(a)
	defer gpu.Free(c)
	defer gpu.Free(small)
	gpu.Fill(a, n*n, 1e-3)
	gpu.Sync()
	for i := 0; i < 20; i++ { // 20 × 137 GFLOP in fp32: tens of milliseconds on any GPU
		gpu.Gemm(false, false, n, n, n, 1, a, a, 0, c)
	}
	gpu.Upload(small, []float32{1, 2, 3})
	gpu.Upload(gpu.View(small, 1, 2), []float32{20, 30})
	gpu.enter()
	err := gpu.stream.Query()
	runtime.UnlockOSThread()
	if err == nil {
		t.Errorf("the stream was idle right after two uploads queued behind 20 large GEMMs: an upload waited for it")
	} else if err != cu.NotReady {
		t.Fatalf("stream query: %v", err)
	}
	h := make([]float32, 3)
	gpu.Download(h, small)
	if h[0] != 1 || h[1] != 20 || h[2] != 30 {
		t.Errorf("uploads landed as %v, want [1 20 30] (in order)", h)
	}
}

// TestLaunchCount: Launches counts every stream operation: kernels, GEMMs, memsets,
// device copies, and nothing for host transfers.
func TestLaunchCount(t *testing.T) {
	l0 := gpu.Launches()
	x := gpu.Alloc(100) // memset: 1
	y := gpu.Alloc(100) // 1
	gpu.Upload(x, make([]float32, 100))
	gpu.Fill(x, 100, 1)                               // 1
	gpu.Copy(y, x, 100)                               // 1
	gpu.Dot(x, y, 100)                                // partial sums, total: 2
	gpu.ClipNorm(x, 100, 1, nil)                      // partial sums, scaling: 2
	gpu.Gemm(false, false, 10, 10, 10, 1, x, x, 0, y) // 1
	gpu.MeanOthers(y, x, 2, 50)                       // 1
	h := make([]float32, 100)
	gpu.Download(h, x)
	gpu.Free(x)
	gpu.Free(y)
	if got := gpu.Launches() - l0; got != 10 {
		t.Errorf("%d launches counted, want 10", got)
	}
}

// TestMemInfo: the device reports free memory no larger than its total, and an
// allocation shows in it (train keeps a view's features resident on the GPU when they
// take at most half of the free memory).
func TestMemInfo(t *testing.T) {
	free, total, err := gpu.MemInfo()
	if err != nil || free <= 0 || free > total {
		t.Fatalf("MemInfo: free %d of %d, %v", free, total, err)
	}
	x := gpu.Alloc(256 << 20) // 1 GiB
	defer gpu.Free(x)
	after, _, err := gpu.MemInfo()
	if err != nil || free-after < 1<<30 {
		t.Errorf("MemInfo after allocating 1 GiB: free %d, before %d (%v)", after, free, err)
	}
	t.Logf("%s: %.1f of %.1f GiB free", gpu.Info().Device, float64(free)/(1<<30), float64(total)/(1<<30))
}

// TestMarksOrderTwoBackends: two backends of one GPU (two streams) read each other's
// buffers (nn.Sharer), ordered by marks, as train's views pass their teacher logits:
// a copy waits for the owner's work before its mark (a Fill queued behind long GEMMs),
// and the owner's later write waits for the reader's copy, itself queued behind long
// GEMMs. Without the waits the first copy would see 0 (the Fill not yet run) and the
// second 9 (the owner's next Fill already run).
func TestMarksOrderTwoBackends(t *testing.T) {
	const n, m = 4096, 1 << 20
	gpu.SetPrecision(FP32)
	other, err := New(Options{Device: 0, Precision: FP32})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if !gpu.Shares(other) || !other.Shares(gpu) || gpu.Shares(nn.NewCPU()) {
		t.Fatalf("Shares: %v, %v between two backends of device 0; %v with the CPU backend",
			gpu.Shares(other), other.Shares(gpu), gpu.Shares(nn.NewCPU()))
	}
	long := func(b *Backend, a, c nn.Buf) {
		for i := 0; i < 20; i++ { // 20 × 137 GFLOP in fp32: tens of milliseconds on any GPU
			b.Gemm(false, false, n, n, n, 1, a, a, 0, c)
		}
	}
	a, c, src := gpu.Alloc(n*n), gpu.Alloc(n*n), gpu.Alloc(m)
	oa, oc, dst := other.Alloc(n*n), other.Alloc(n*n), other.Alloc(m)
	defer func() {
		gpu.Free(a)
		gpu.Free(c)
		gpu.Free(src)
		other.Free(oa)
		other.Free(oc)
		other.Free(dst)
	}()
	gpu.Fill(a, n*n, 1e-3)
	other.Fill(oa, n*n, 1e-3)
	gpu.Sync()
	other.Sync()
	h := make([]float32, m)
	check := func(what string, want float32) {
		t.Helper()
		other.Download(h, dst)
		for i, v := range h {
			if v != want {
				t.Fatalf("%s: element %d is %g, want %g", what, i, v, want)
			}
		}
	}

	l0, o0 := gpu.Launches(), other.Launches()
	long(gpu, a, c)
	gpu.Fill(src, m, 7)
	gpu.Mark(0)
	other.After(gpu, 0)
	other.Copy(dst, src, m)
	check("a copy after the owner's mark", 7)

	long(other, oa, oc)
	other.Copy(dst, src, m)
	other.Mark(1)
	gpu.After(other, 1)
	gpu.Fill(src, m, 9)
	check("a copy the owner waited for", 7)
	gpu.Sync()
	if dl, ol := gpu.Launches()-l0, other.Launches()-o0; dl != 20+1+1+1+1 || ol != 1+1+20+1+1 {
		t.Errorf("launches counted: %d and %d, want 24 each (a mark and a wait count one each)", dl, ol)
	}
}

// TestLargeUpload: an upload larger than a staging buffer goes in pieces of stageMax
// bytes and arrives whole, its last piece short.
func TestLargeUpload(t *testing.T) {
	n := 2*stageMax/4 + 1234
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i%4099) - 7.5
	}
	x := gpu.Alloc(n)
	defer gpu.Free(x)
	gpu.Upload(x, src)
	got := make([]float32, n)
	gpu.Download(got, x)
	for i := range got {
		if got[i] != src[i] {
			t.Fatalf("element %d of %d arrived as %g, want %g", i, n, got[i], src[i])
		}
	}
}

// TestDownloadWaitCounted: a Download queued behind long GPU work counts the host's wait
// for that work (HostWaitSeconds), which to pageable memory happens inside the copy call.
func TestDownloadWaitCounted(t *testing.T) {
	const n = 4096
	gpu.SetPrecision(FP32)
	a, c := gpu.Alloc(n*n), gpu.Alloc(n*n)
	defer gpu.Free(a)
	defer gpu.Free(c)
	gpu.Fill(a, n*n, 1e-3)
	gpu.Sync()
	w0, start := gpu.HostWaitSeconds(), time.Now()
	for i := 0; i < 20; i++ { // 20 × 137 GFLOP in fp32: tens of milliseconds on any GPU
		gpu.Gemm(false, false, n, n, n, 1, a, a, 0, c)
	}
	gpu.Download(make([]float32, 1), c)
	wall, waited := time.Since(start).Seconds(), gpu.HostWaitSeconds()-w0
	if waited < wall/2 || waited > wall {
		t.Errorf("a Download behind %.1f ms of GEMMs counted %.1f ms of host wait; want most of it", 1e3*wall, 1e3*waited)
	}
}
