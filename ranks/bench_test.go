package ranks

import (
	"fmt"
	"testing"
)

// BenchmarkLocalAllreduceF32 sums a 3M-float gradient over goroutine ranks.
func BenchmarkLocalAllreduceF32(b *testing.B) {
	for _, p := range []int{2, 4} {
		b.Run(fmt.Sprintf("np=%d", p), func(b *testing.B) {
			const n = 3_000_000
			b.SetBytes(n * 4)
			err := RunLocal(p, func(c Comm) error {
				buf := rankF32(c.Rank(), n)
				c.Barrier()
				if c.Rank() == 0 {
					b.ResetTimer()
				}
				for range b.N {
					c.AllreduceF32(buf)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkReduceInto(b *testing.B) {
	const n, p = 1 << 20, 4
	srcs := make([][]float32, p)
	for r := range srcs {
		srcs[r] = rankF32(r, n)
	}
	dst := make([]float32, n)
	b.SetBytes(n * 4 * p)
	for b.Loop() {
		reduceInto(dst, srcs, Sum)
	}
}
