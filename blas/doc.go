// Package blas is mct's single-precision matrix multiply: one function, Sgemm, over
// row-major float32 slices, with the fastest implementation the build allows.
//
// With cgo it calls OpenBLAS's cblas_sgemm (Debian libopenblas-dev), linked
// statically from libopenblas.a so the mct binary does not depend on an OpenBLAS
// shared library at run time (-tags openblas_dynamic links the shared one through
// pkg-config instead, for systems without the static library). With CGO_ENABLED=0 it uses gonum's pure-Go Sgemm,
// which is slower but needs nothing from the machine. Impl reports which one was
// compiled in; both are tested against a float64 reference.
//
// Usage:
//
//	// C (m×n) = 1·A (m×k) · Bᵀ (B stored n×k) + 0·C
//	blas.Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
//
// Shapes that do not fit the slices are programmer errors and panic at the call,
// before any memory is touched. OpenBLAS runs its own thread pool; SetThreads sizes
// it (the CPU backend sets it to GOMAXPROCS so the BLAS and the Go loops do not
// oversubscribe the cores).
package blas
