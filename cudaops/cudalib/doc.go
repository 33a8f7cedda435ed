// Package cudalib opens NVIDIA's run-time compiled libraries, NVRTC and
// cuBLAS, with dlopen, and holds the CUDA C source of the mct kernels.
//
// Loading at run time (instead of linking) is what lets one `cuda` build of
// mct run on CUDA 11, 12 and 13 machines: LoadNVRTC and LoadCUBLAS take the
// newest libnvrtc.so.N / libcublas.so.N no newer than the driver, found
// through the dynamic linker, CUDA_HOME, CUDA_PATH or /usr/local/cuda.
//
// The package needs no CUDA header, no GPU and no driver, and does not import
// gorgonia.org/cu; so its tests run anywhere cgo does: they compile the
// kernels to PTX with whatever NVRTC they find (scripts/cuda-headers.sh puts
// NVRTC 11.8 in its cache) and check that cuBLAS's entry points resolve
// against Debian's stub library. cudaops (build tag cuda) loads the PTX
// into a CUDA context and launches it.
//
// Kernels is the kernel source; KernelNames lists its entry points.
package cudalib
