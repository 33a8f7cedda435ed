// Package kemu runs the CUDA kernels of cudaops (cudaops/cudalib/kernels.cu,
// the very same text) on the CPU, for tests on machines without a GPU.
//
// emu.cc is a small CUDA execution model: each thread of a block is a
// coroutine, __syncthreads is a switch to a scheduler that runs every thread
// to the barrier, and warp shuffles go through block memory between two
// barriers. Backend wraps it as an nn.Backend (memory and GEMM from nn.CPU,
// every other operation through the emulated kernels with the launch shapes
// cudaops uses), so the kernels' indexing, reductions and arithmetic are
// checked against the CPU backend by go test, GPU or not. What only a GPU
// can check (launch argument packing, cuBLAS, streams, the real device's
// math library) is left to cudaops' own tests.
//
// It is slow (a context switch per thread per barrier): use small shapes.
package kemu
