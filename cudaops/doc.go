// Package cudaops is the CUDA implementation of nn.Backend: every operation of
// the probe and of the MCT step runs on one GPU, on one stream, so an update
// leaves the device only for one small download of the scalars the host needs
// (losses, pseudo-label hits, the exact-h product) and, under MPI, for the
// all-gathered logits: clipping reads its norm on the device, and uploads go
// through page-locked staging (pinned.go). With one replica per view the host
// waits once per update (twice under MPI). Launches counts the stream operations
// issued (mct bench reports them per update): with waits gone, their fixed cost
// is what bounds a small update.
//
// Views in one process (mct without mpirun) on one GPU each have a backend, and so
// a stream, of the same context: nn.Sharer lets one backend's Copy read another's
// buffers, and Mark and After (an event recorded on one stream, waited for on
// another) order the two streams without the host. train passes the teacher logits
// from view to view this way (train/exchange.go).
//
// Batches: train keeps each view's training features resident in device memory when
// they take at most half of the free memory (MemInfo) and gathers every batch there
// (GatherRows, inside the recorded segments), so an update uploads its rows' indices
// and labels (a few KB) instead of their features; with one replica per view the
// other views' logits are the only large upload left. UploadedBytes counts what Upload has sent (`mct bench`
// reports it per update).
//
// CUDA graphs (graph.go): Record implements nn.Recorder. The MCT step (train) runs
// its three device-only segments per update through it — the teacher forward, steps
// 2–4 and the teacher step — so with one replica per view an update issues three
// graph launches instead of ~120 operations per view. Record runs the step's code
// every time with the backend collecting the operations instead of issuing them, and
// launches the graph captured under the key only if the operations are identical
// (kernels, shapes, pointers, every argument); new operations are issued one by one
// the first time (their kernels load outside any capture) and captured the next. A
// replay therefore never uses stale arguments. If capture fails, the operations are
// issued directly and Record returns the error; train then turns graphs off with one
// warning. MCT_CUDA_GRAPHS=0 turns them off for comparison. cuBLAS gets a fixed
// workspace (graph capture must not allocate), graphs or not, so that it picks the
// same algorithms either way: graphs do not change a bit of the results.
//
// It is built only with the `cuda` build tag. The driver API comes from
// gorgonia.org/cu, whose package initialisation calls cuInit and exits the
// process when no driver is present; so nothing in the default build imports
// this package, and a `cuda` binary (or this package's test binary) exits at
// start on a machine without an NVIDIA driver and GPU.
//
// Building (here or on a cluster without a CUDA toolkit):
//
//	eval "$(scripts/cuda-headers.sh)"   # Debian's CUDA 11.8 headers and stub libcuda
//	go build -tags cuda ./...
//
// The binary links libcuda.so.1 only. NVRTC (the kernels are CUDA C compiled
// at start-up for the GPU at hand, see cudaops/cudalib) and cuBLAS (the
// GEMMs) are opened with dlopen: the newest libnvrtc.so.N and libcublas.so.N
// no newer than the driver, N = 13, 12 or 11, from the linker path, CUDA_HOME,
// CUDA_PATH or /usr/local/cuda.
//
// Use:
//
//	b, err := cudaops.New(cudaops.Options{Device: placement.Device, Precision: cudaops.BF16})
//	if err != nil { ... }            // no GPU, no cuBLAS, kernels failed to build
//	defer b.Close()
//	p, _ := nn.NewProbe(b, cfg, seed) // everything else goes through nn.Backend
//
// Threads: CUDA binds a context to an OS thread. Every method locks the
// calling goroutine to its thread and makes the backend's context (the
// device's primary context) current for the duration of the call, so a
// Backend may be used from any goroutine, but from one at a time: unlike the
// CPU backend it is not safe for concurrent use.
//
// Tests: without a GPU, `go test ./cudaops/...` compiles the kernels with
// NVRTC and checks their registers (cudalib, when scripts/cuda-headers.sh
// has fetched NVRTC) and runs the kernels' own source on the CPU against
// nn.CPU (kemu, through the conformance suite of nn/nntest). On a GPU machine,
// bench/device-pack.sh builds this package's test binary, which runs the same
// suite on the device, and bench/device-check.sh runs it.
//
// Precision: GEMMs run in fp32 (FP32, exact, for tests), or with fp32 inputs
// rounded to TF32 or bf16 for the tensor cores with fp32 accumulation (TF32,
// BF16: for speed). Every other kernel computes in fp32 with reductions in
// fp64, like the CPU backend; results agree with it to about 1e-5 relative in
// FP32 mode and 1e-2 in BF16 mode.
package cudaops
