//go:build !cgo

package blas

const impl = "gonum"

func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemmGonum(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func setThreads(int) {}

func core() string { return "" }

// Advice has nothing to say about the pure-Go GEMM.
func Advice() string { return "" }
