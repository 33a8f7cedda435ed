package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

type gemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int)

// naive is the float64 reference: C = alpha·op(A)·op(B) + beta·C, row-major.
func naive(transA, transB bool, m, n, k int, alpha float64, a []float32, lda int,
	b []float32, ldb int, beta float64, c []float64, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			old := c[i*ldc+j]
			if beta == 0 {
				old = 0 // BLAS semantics: beta = 0 ignores C (even NaN)
			}
			c[i*ldc+j] = alpha*s + beta*old
		}
	}
}

func checkImpl(t *testing.T, name string, f gemmFunc) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 65, 66}, {130, 70, 257}, {5, 4, 0}}
	for _, sh := range shapes {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
					alpha, beta := ab[0], ab[1]
					// Strides larger than the logical width exercise lda/ldb/ldc.
					ra, ca := m, k
					if tA {
						ra, ca = k, m
					}
					rb, cb := k, n
					if tB {
						rb, cb = n, k
					}
					lda, ldb, ldc := ca+3, cb+1, n+2
					a := randSlice(rng, max(ra*lda, 1))
					b := randSlice(rng, max(rb*ldb, 1))
					c := randSlice(rng, m*ldc)
					if beta == 0 {
						for i := range c {
							c[i] = float32(math.NaN())
						}
					}
					want := make([]float64, len(c))
					for i, v := range c {
						want[i] = float64(v)
					}
					naive(tA, tB, m, n, k, float64(alpha), a, lda, b, ldb, float64(beta), want, ldc)
					f(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							got, w := float64(c[i*ldc+j]), want[i*ldc+j]
							// float32 accumulation over k terms of size ~1.
							tol := 1e-5 * (1 + math.Sqrt(float64(k))) * (1 + math.Abs(w))
							if math.Abs(got-w) > tol || math.IsNaN(got) {
								t.Fatalf("%s tA=%v tB=%v m=%d n=%d k=%d α=%g β=%g: C[%d,%d]=%g want %g",
									name, tA, tB, m, n, k, alpha, beta, i, j, got, w)
							}
						}
						// Padding columns of C must be untouched.
						for j := n; j < ldc; j++ {
							if got, w := float64(c[i*ldc+j]), want[i*ldc+j]; got != w && !(math.IsNaN(got) && math.IsNaN(w)) {
								t.Fatalf("%s wrote padding C[%d,%d]", name, i, j)
							}
						}
					}
				}
			}
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func TestSgemm(t *testing.T) {
	t.Logf("implementation: %s", Impl())
	checkImpl(t, Impl(), Sgemm)
}

// TestSgemmGonum checks the pure-Go path even in cgo builds.
func TestSgemmGonum(t *testing.T) { checkImpl(t, "gonum", sgemmGonum) }

func TestSgemmThreads(t *testing.T) {
	SetThreads(1)
	checkImpl(t, Impl()+"/1 thread", Sgemm)
	SetThreads(2)
}

func TestSgemmBadShapePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Sgemm with a too-short A did not panic")
		}
	}()
	Sgemm(false, false, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
}

func BenchmarkSgemm1024(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewPCG(1, 2))
	x, y, z := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
	for b.Loop() {
		Sgemm(false, true, n, n, n, 1, x, n, y, n, 0, z, n)
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// TestSgemmConcurrent: the local transport runs every view in one process, so
// several goroutines call Sgemm at once; results must equal the serial ones.
func TestSgemmConcurrent(t *testing.T) {
	const n, workers = 300, 4
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := randSlice(rng, n*n), randSlice(rng, n*n)
	want := make([]float32, n*n)
	Sgemm(false, true, n, n, n, 1, a, n, b, n, 0, want, n)
	errs := make(chan string, workers)
	for w := 0; w < workers; w++ {
		go func() {
			c := make([]float32, n*n)
			for it := 0; it < 10; it++ {
				Sgemm(false, true, n, n, n, 1, a, n, b, n, 0, c, n)
				for i := range c {
					if c[i] != want[i] {
						errs <- fmt.Sprintf("concurrent result differs at %d: %g vs %g", i, c[i], want[i])
						return
					}
				}
			}
			errs <- ""
		}()
	}
	for w := 0; w < workers; w++ {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
}
