package blas

import "fmt"

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where op(X)
// is X or Xᵀ. op(A) is m×k, op(B) is k×n and C is m×n; lda, ldb and ldc are the row
// strides of A, B and C as stored (so lda ≥ k when A is not transposed and lda ≥ m
// when it is). When beta is 0, C is overwritten and may hold NaN beforehand.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SetThreads sets how many threads the BLAS may use (n < 1 means 1). The pure-Go
// implementation follows GOMAXPROCS instead and ignores it.
func SetThreads(n int) {
	if n < 1 {
		n = 1
	}
	setThreads(n)
}

// Impl names the compiled-in implementation and, for OpenBLAS, the kernel family it
// runs: "openblas (SkylakeX)", "gonum".
func Impl() string {
	if c := core(); c != "" {
		return impl + " (" + c + ")"
	}
	return impl
}

// checkArgs panics when the shapes do not fit the slices; a BLAS would otherwise read
// or write out of bounds (OpenBLAS) or panic deep inside (gonum).
func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("blas: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	need := func(name string, s []float32, rows, cols, ld int) {
		if ld < max(cols, 1) {
			panic(fmt.Sprintf("blas: ld%s=%d < %d columns", name, ld, cols))
		}
		if rows > 0 && cols > 0 && len(s) < (rows-1)*ld+cols {
			panic(fmt.Sprintf("blas: %s has %d elements, a %d×%d matrix with stride %d needs %d",
				name, len(s), rows, cols, ld, (rows-1)*ld+cols))
		}
	}
	need("a", a, rowsA, colsA, lda)
	need("b", b, rowsB, colsB, ldb)
	need("c", c, m, n, ldc)
}
