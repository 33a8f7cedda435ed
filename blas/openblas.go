//go:build cgo

package blas

// The link flags are in link_static.go (default) and link_dynamic.go (build tag
// openblas_dynamic).

/*
#include <cblas.h>
*/
import "C"

import "unsafe"

const impl = "openblas"

func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans), C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	// With k == 0 the A and B slices may be empty; OpenBLAS does not read them then,
	// but &s[0] would panic, so pass a pointer to a dummy.
	var dummy float32
	pa, pb := &dummy, &dummy
	if len(a) > 0 {
		pa = &a[0]
	}
	if len(b) > 0 {
		pb = &b[0]
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(pa)), C.blasint(lda),
		(*C.float)(unsafe.Pointer(pb)), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

func setThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// core is the kernel family OpenBLAS selected at start-up (e.g. "SkylakeX", "Haswell").
func core() string { return C.GoString(C.openblas_get_corename()) }
