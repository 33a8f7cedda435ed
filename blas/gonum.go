package blas

import (
	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemmGonum is the pure-Go path; it is compiled into every build so the tests can
// check it even where cgo selects OpenBLAS.
func sgemmGonum(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := gblas.NoTrans, gblas.NoTrans
	if transA {
		ta = gblas.Trans
	}
	if transB {
		tb = gblas.Trans
	}
	// gonum checks len(a) ≥ (rows-1)·lda+cols only when k > 0; with k == 0 the
	// product is empty and C is just scaled by beta, which gonum handles.
	gonum.Implementation{}.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
