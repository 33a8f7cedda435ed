//go:build cuda

package cudaops

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"time"
	"unsafe"

	"gorgonia.org/cu"

	"mct/cudaops/cudalib"
	"mct/nn"
)

// Precision selects how GEMMs use the tensor cores.
type Precision int

const (
	// FP32 is exact single precision: the mode for tests against the CPU.
	FP32 Precision = iota
	// TF32 rounds GEMM inputs to TF32, accumulating in fp32.
	TF32
	// BF16 rounds GEMM inputs to bfloat16, accumulating in fp32.
	BF16
)

func (p Precision) String() string {
	switch p {
	case FP32:
		return "fp32"
	case TF32:
		return "tf32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// ParsePrecision reads "fp32", "tf32" or "bf16".
func ParsePrecision(s string) (Precision, error) {
	for _, p := range []Precision{FP32, TF32, BF16} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("cudaops: precision %q: want fp32, tf32 or bf16", s)
}

func (p Precision) compute() cudalib.ComputeType {
	switch p {
	case TF32:
		return cudalib.Compute32FFastTF32
	case BF16:
		return cudalib.Compute32FFast16BF
	}
	return cudalib.Compute32F
}

// Options configure New.
type Options struct {
	// Device is the CUDA device ordinal (after CUDA_VISIBLE_DEVICES), as in
	// probe.Placement.Device.
	Device    int
	Precision Precision
}

// Backend is nn.Backend on one GPU.
type Backend struct {
	dev     cu.Device
	ordinal int
	ctx     cu.CUContext
	stream  cu.Stream
	mod     cu.Module
	k       kernels
	blas    cudalib.Handle
	prec    Precision
	sms     int
	info    Info

	// Reduction scratch: NPART float64 partial sums and the total.
	part  cu.DevicePtr
	stage staging
	// launches counts stream operations (Launches), uploaded the bytes of Upload
	// (UploadedBytes), waited the host's waits for the device (HostWaitSeconds).
	launches, uploaded int64
	waited             time.Duration
	// cache holds freed allocations by element count for reuse. All work
	// runs on one stream, so memory freed by the host can be handed out
	// again at once: whatever still uses it was queued before whatever will.
	// cuMemFree, in contrast, waits for the whole device.
	cache map[int][]cu.DevicePtr
	// hasBLAS says b.blas holds a handle (a failed New releases what it made).
	hasBLAS bool
	closed  bool
	// workspace is cuBLAS's fixed workspace (cudalib.Handle.SetWorkspace).
	workspace cu.DevicePtr
	// marks are the events of Mark and After (nn.Sharer).
	marks [nn.Marks]cu.Event
	// rec collects the ops of the Record call under way (nil outside Record); graphs
	// are the recorded segments by key, and graphStats counts their use (graph.go).
	rec        *recording
	graphs     map[string]*graph
	graphStats GraphStats
	// segs times the recorded segments on the device (timing.go), opTimes their
	// operations one by one (optiming.go).
	segs    segmentTimer
	opTimes opTimer
}

// Info describes what New found.
type Info struct {
	Device        string // "NVIDIA H200"
	CC            string // compute capability, "9.0"
	Driver        int    // CUDA driver version, 13000
	NVRTC, CUBLAS string // the libraries loaded
	CUBLASVersion int
	Arch          string // the NVRTC target the kernels were built for
}

// unavailable explains CUDA_ERROR_DEVICE_UNAVAILABLE (46 in cuda.h), which
// gorgonia.org/cu names only by its number: the GPU is in exclusive-process (or
// prohibited) compute mode and another process holds it, as when several ranks
// share one GPU. "" for any other error.
func unavailable(err error) string {
	const deviceUnavailable = 46
	if v := reflect.ValueOf(err); v.Kind() == reflect.Int && v.Int() == deviceUnavailable {
		return " (the GPU is busy or unavailable: in exclusive-process compute mode one process alone may use it; run one rank per GPU, or have the mode set to default: nvidia-smi -c DEFAULT)"
	}
	return ""
}

// cublasWorkspace is the bytes of cuBLAS's workspace: NVIDIA's recommendation for
// Hopper (32 MiB; 4 MiB suffice for older GPUs), where cuBLAS's own default is smaller.
const cublasWorkspace = 32 << 20

// npart is the fixed number of blocks of the two-pass reductions: fixed, so
// that sums do not depend on the GPU. 1024 blocks of 256 threads fill every
// thread slot of a 128-SM GPU (H100, H200: 2048 per SM), so the pass over a
// whole gradient (ClipNorm; 25 MB for the reference FCNN) has as many loads in
// flight as the GPU can hold; 256 blocks left three quarters of them empty.
const npart = 1024

var _ nn.Backend = (*Backend)(nil)
var (
	_ nn.Sharer    = (*Backend)(nil)
	_ nn.Addresser = (*Backend)(nil)
)

// train finds these optional methods by their signatures (resident features, `mct
// bench`'s upload bytes, waits and segment times); a change here would quietly turn
// those off.
var _ interface {
	MemInfo() (free, total int64, err error)
	UploadedBytes() int64
	Launches() int64
	HostWaitSeconds() float64
	TimeSegments()
	SegmentSeconds() map[string]float64
} = (*Backend)(nil)

// New opens the GPU, builds the kernels and opens cuBLAS. Errors say what is
// missing and how to get it.
func New(o Options) (_ *Backend, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cudaops: cuDeviceGetCount: %v", err)
	}
	if o.Device < 0 || o.Device >= n {
		return nil, fmt.Errorf("cudaops: CUDA device %d asked for, but %d visible (check CUDA_VISIBLE_DEVICES and `mct probe`)", o.Device, n)
	}
	b := &Backend{ordinal: o.Device, prec: o.Precision, cache: map[int][]cu.DevicePtr{}, graphs: map[string]*graph{}}
	if b.dev, err = cu.GetDevice(o.Device); err != nil {
		return nil, fmt.Errorf("cudaops: device %d: %v", o.Device, err)
	}
	b.info.Driver = cu.Version()
	b.info.Device, _ = b.dev.Name()
	major, minor, err := b.dev.ComputeCapability()
	if err != nil {
		return nil, fmt.Errorf("cudaops: device %d compute capability: %v", o.Device, err)
	}
	b.info.CC = fmt.Sprintf("%d.%d", major, minor)
	if b.sms, err = b.dev.Attribute(cu.MultiprocessorCount); err != nil {
		return nil, fmt.Errorf("cudaops: device %d: %v", o.Device, err)
	}
	// The primary context is the one the CUDA runtime (and so cuBLAS and any
	// CUDA-aware MPI) uses on this device; sharing it avoids a second context.
	if b.ctx, err = b.dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cudaops: device %d: retain primary context: %v%s", o.Device, err, unavailable(err))
	}
	defer func() {
		if err != nil {
			b.release()
		}
	}()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return nil, fmt.Errorf("cudaops: set context: %v", err)
	}
	if b.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return nil, fmt.Errorf("cudaops: create stream: %v", err)
	}
	for k := range b.marks {
		if b.marks[k], err = cu.MakeEvent(cu.DisableTiming); err != nil {
			return nil, fmt.Errorf("cudaops: create event: %v", err)
		}
	}
	drvMajor := b.info.Driver / 1000
	if err := b.buildKernels(drvMajor, major, minor); err != nil {
		return nil, err
	}
	lib, err := cudalib.LoadCUBLAS(drvMajor)
	if err != nil {
		return nil, fmt.Errorf("cudaops: %v", err)
	}
	b.info.CUBLAS = lib.Path()
	if b.blas, err = lib.NewHandle(); err != nil {
		return nil, fmt.Errorf("cudaops: %v", err)
	}
	b.hasBLAS = true
	if err := b.blas.SetStream(uintptr(unsafe.Pointer(b.stream.C()))); err != nil {
		return nil, fmt.Errorf("cudaops: %v", err)
	}
	b.info.CUBLASVersion, _ = b.blas.Version()
	// After SetStream, which resets the workspace to cuBLAS's own pool.
	if b.workspace, err = cu.MemAlloc(cublasWorkspace); err != nil {
		return nil, fmt.Errorf("cudaops: allocate the cuBLAS workspace (%d MiB): %v", cublasWorkspace>>20, err)
	}
	if err := b.blas.SetWorkspace(uintptr(b.workspace), cublasWorkspace); err != nil {
		return nil, fmt.Errorf("cudaops: %v", err)
	}
	if b.part, err = cu.MemAlloc(8 * (npart + 1)); err != nil {
		return nil, fmt.Errorf("cudaops: allocate reduction scratch: %v", err)
	}
	if err := b.stage.alloc(); err != nil {
		return nil, fmt.Errorf("cudaops: %v", err)
	}
	return b, nil
}

// buildKernels compiles the kernels for the device's architecture, falling
// back to older PTX targets (which the driver JIT-compiles for a newer GPU)
// when this NVRTC predates the GPU.
func (b *Backend) buildKernels(drvMajor, major, minor int) error {
	nv, err := cudalib.LoadNVRTC(drvMajor)
	if err != nil {
		return fmt.Errorf("cudaops: %v", err)
	}
	b.info.NVRTC = nv.Path()
	var ptx string
	var errs []error
	targets := [][2]int{{major, minor}, {9, 0}, {8, 0}, {7, 0}}
	for i, a := range targets {
		// Skip targets newer than the GPU, and the GPU's own when it is also a
		// fallback (9.0 on an H100): a second try would fail the same way.
		if a[0]*10+a[1] > major*10+minor || (i > 0 && a == targets[0]) {
			continue
		}
		p, _, err := nv.Compile(cudalib.Kernels, "mct_kernels.cu", cudalib.CompileOptions(a[0], a[1])...)
		if err == nil {
			ptx = p
			b.info.Arch = fmt.Sprintf("compute_%d%d", a[0], a[1])
			break
		}
		errs = append(errs, err)
	}
	if ptx == "" {
		return fmt.Errorf("cudaops: NVRTC (%s) could not build the kernels for compute capability %d.%d: %v", nv.Path(), major, minor, errs)
	}
	if b.mod, err = cu.LoadData(ptx); err != nil {
		return fmt.Errorf("cudaops: load kernels (%s PTX from %s) into driver %d: %v", b.info.Arch, nv.Path(), b.info.Driver, err)
	}
	return b.k.load(b.mod, b.sms)
}

// Info reports the device and libraries in use.
func (b *Backend) Info() Info { return b.info }

// Precision is the GEMM precision in use.
func (b *Backend) Precision() Precision { return b.prec }

// SetPrecision changes the GEMM precision for later calls.
func (b *Backend) SetPrecision(p Precision) { b.prec = p }

// Name is "cuda:<ordinal>".
func (b *Backend) Name() string { return fmt.Sprintf("cuda:%d", b.ordinal) }

// enter locks the goroutine to its thread and makes the context current; the
// caller defers runtime.UnlockOSThread.
func (b *Backend) enter() {
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		panic(fmt.Sprintf("cudaops: make context current: %v", err))
	}
}

// check panics on a CUDA error: after New succeeded, a failing call is a
// programming error or a lost device, neither recoverable by the caller.
func check(what string, err error) {
	if err != nil {
		panic(fmt.Sprintf("cudaops: %s: %v", what, err))
	}
}

// Close releases the backend's device resources. Buffers from Alloc must be
// freed before.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	b.notRecording("Close")
	b.enter()
	defer runtime.UnlockOSThread()
	b.closed = true
	if err := b.stream.Synchronize(); err != nil {
		b.release()
		return fmt.Errorf("cudaops: close: %v", err)
	}
	return b.release()
}

// release frees what New made, whatever it got to; the context is current.
func (b *Backend) release() error {
	b.dropGraphs()
	if b.hasBLAS {
		b.blas.Destroy()
	}
	if b.workspace != 0 {
		cu.MemFree(b.workspace)
	}
	if b.part != 0 {
		cu.MemFree(b.part)
	}
	b.stage.free()
	for _, ps := range b.cache {
		for _, p := range ps {
			cu.MemFree(p)
		}
	}
	b.cache = nil
	if b.mod != (cu.Module{}) {
		b.mod.Unload()
	}
	for k := range b.marks {
		if b.marks[k] != (cu.Event{}) {
			cu.DestroyEvent(&b.marks[k])
		}
	}
	b.dropSegmentTimes()
	b.dropOpTimes()
	if b.stream != (cu.Stream{}) {
		b.stream.Destroy()
	}
	return b.dev.ReleasePrimaryCtx()
}

// buf is device memory: n float32 at ptr. Views share their parent's memory
// and own nothing.
type buf struct {
	ptr  cu.DevicePtr
	n    int
	view bool
}

func (x *buf) Len() int { return x.n }

func dev(x nn.Buf) *buf {
	d, ok := x.(*buf)
	if !ok {
		panic(fmt.Sprintf("cudaops: buffer %T is not from a CUDA backend", x))
	}
	return d
}

// optional is need for an optional operand: a null pointer when x is nil.
func optional(x nn.Buf, n int, what string) cu.DevicePtr {
	if x == nil {
		return 0
	}
	return need(x, n, what).ptr
}

func need(x nn.Buf, n int, what string) *buf {
	d := dev(x)
	if n > d.n {
		panic(fmt.Sprintf("cudaops: %s needs %d elements, buffer has %d", what, n, d.n))
	}
	return d
}

func (b *Backend) Alloc(n int) nn.Buf {
	if n < 0 {
		panic(fmt.Sprintf("cudaops: Alloc(%d)", n))
	}
	if n == 0 {
		return &buf{}
	}
	b.notRecording("Alloc")
	b.enter()
	defer runtime.UnlockOSThread()
	var p cu.DevicePtr
	if ps := b.cache[n]; len(ps) > 0 {
		p, b.cache[n] = ps[len(ps)-1], ps[:len(ps)-1]
	} else {
		var err error
		p, err = cu.MemAlloc(int64(n) * 4)
		check(fmt.Sprintf("allocate %d floats", n), err)
	}
	b.memset(p, 0, n)
	return &buf{ptr: p, n: n}
}

// Free returns x's memory to the backend's cache, for a later Alloc of the
// same length; the device gets it back at Close. Work queued on this backend
// before Free may still use x; work elsewhere (another stream, CUDA-aware
// MPI) must have finished.
func (b *Backend) Free(x nn.Buf) {
	b.notRecording("Free")
	d := dev(x)
	if d.view || d.ptr == 0 {
		return
	}
	b.cache[d.n] = append(b.cache[d.n], d.ptr)
	d.ptr, d.n = 0, 0
}

func (b *Backend) View(x nn.Buf, off, n int) nn.Buf {
	d := dev(x)
	if off < 0 || n < 0 || off+n > d.n {
		panic(fmt.Sprintf("cudaops: View [%d, %d) of a buffer of %d", off, off+n, d.n))
	}
	return &buf{ptr: d.ptr + cu.DevicePtr(4*off), n: n, view: true}
}

func (b *Backend) Upload(dst nn.Buf, src []float32) {
	d := need(dst, len(src), "Upload")
	if len(src) == 0 {
		return
	}
	b.notRecording("Upload")
	b.enter()
	defer runtime.UnlockOSThread()
	// Through page-locked staging (pinned.go): from pageable memory the driver
	// would first wait for the stream to drain. src may change on return.
	b.waited += b.stage.upload(d.ptr, unsafe.Pointer(&src[0]), 4*len(src), b.stream)
	b.uploaded += 4 * int64(len(src))
}

// UploadedBytes is the number of bytes Upload has sent to the device so far, as
// nn.CPU counts them: `mct bench` reports it per update.
func (b *Backend) UploadedBytes() int64 { return b.uploaded }

// MemInfo reports the device's free and total memory in bytes (cuMemGetInfo). Memory
// this backend has freed stays in its cache and does not count as free.
func (b *Backend) MemInfo() (free, total int64, err error) {
	b.enter()
	defer runtime.UnlockOSThread()
	free, total, err = cu.MemInfo()
	if err != nil {
		err = fmt.Errorf("cudaops: cuMemGetInfo: %v", err)
	}
	return free, total, err
}

func (b *Backend) Download(dst []float32, src nn.Buf) {
	s := need(src, len(dst), "Download")
	if len(dst) == 0 {
		return
	}
	b.notRecording("Download")
	b.enter()
	defer runtime.UnlockOSThread()
	b.download(unsafe.Pointer(&dst[0]), s.ptr, 4*len(dst), "download")
}

func (b *Backend) Copy(dst, src nn.Buf, n int) {
	d, s := need(dst, n, "Copy dst"), need(src, n, "Copy src")
	if n == 0 {
		return
	}
	b.enter()
	defer runtime.UnlockOSThread()
	b.copyD(d.ptr, s.ptr, 4*n)
}

// Addr implements nn.Addresser: x's device address, for a CUDA-aware MPI.
func (b *Backend) Addr(x nn.Buf) uintptr { return uintptr(dev(x).ptr) }

// InContext implements nn.Addresser: f runs on a locked thread with the backend's
// context current.
func (b *Backend) InContext(f func()) {
	b.enter()
	defer runtime.UnlockOSThread()
	f()
}

// Shares implements nn.Sharer: o is a backend of the same GPU, so its buffers live in
// this backend's context (both use the device's primary context).
func (b *Backend) Shares(o nn.Backend) bool {
	ob, ok := o.(*Backend)
	return ok && ob.ctx == b.ctx
}

// Mark implements nn.Sharer: an event recorded on the stream.
func (b *Backend) Mark(k int) {
	b.notRecording("Mark")
	b.enter()
	defer runtime.UnlockOSThread()
	check("record an event", b.marks[k].Record(b.stream))
	b.launches++
}

// After implements nn.Sharer: the stream waits, on the device, for o's event.
func (b *Backend) After(o nn.Backend, k int) {
	b.notRecording("After")
	ob, ok := o.(*Backend)
	if !ok || !b.Shares(o) {
		panic(fmt.Sprintf("cudaops: After a backend (%s) that does not share this one's context", o.Name()))
	}
	b.enter()
	defer runtime.UnlockOSThread()
	check("wait for an event", b.stream.Wait(ob.marks[k], 0))
	b.launches++
}

func (b *Backend) Fill(x nn.Buf, n int, v float32) {
	d := need(x, n, "Fill")
	if n == 0 {
		return
	}
	b.enter()
	defer runtime.UnlockOSThread()
	b.memset(d.ptr, math.Float32bits(v), n)
}

func (b *Backend) Sync() {
	b.notRecording("Sync")
	b.enter()
	defer runtime.UnlockOSThread()
	b.synchronize("synchronize")
}
