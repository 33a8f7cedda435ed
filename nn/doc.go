// Package nn is mct's neural-network layer: the MLP probe trained on each view, its
// hand-written backward pass, softmax cross-entropy, Adam, gradient clipping and the
// learning-rate/early-stopping logic, all written once over a compute Backend.
//
// A Backend (backend.go) owns float32 buffers and runs the kernels the MCT step needs:
// GEMM, fused bias+LeakyReLU, BatchNorm split at its batch reductions (so data-parallel
// replicas can all-reduce them), softmax cross-entropy with temperature, Gumbel-max
// sampling from the counter-based RNG of rng.go, Adam and norms. NewCPU is the CPU
// backend (GEMM through package blas); cudaops provides the CUDA one.
package nn
