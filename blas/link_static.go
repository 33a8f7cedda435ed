//go:build cgo && !openblas_dynamic

package blas

// Static link: the sgemm objects of Debian's libopenblas.a (pthread build) need only
// libpthread and libm, so the binary carries OpenBLAS and `ldd` lists only libc. The
// binary grows by ~25 MB (OpenBLAS ships kernels for every x86 generation and picks
// one at start-up). Where only a shared OpenBLAS exists, build with
// -tags openblas_dynamic.

/*
#cgo CFLAGS: -I/usr/include/x86_64-linux-gnu
#cgo LDFLAGS: -l:libopenblas.a -lpthread -lm
*/
import "C"
