//go:build cgo && openblas_dynamic

package blas

// Dynamic link through pkg-config, for systems without libopenblas.a (the binary
// then needs libopenblas and its Fortran runtime at run time).

// #cgo pkg-config: openblas
import "C"

// Advice: a shared OpenBLAS picks its kernel before mct runs; nothing to say.
func Advice() string { return "" }
