package data

import (
	"context"
	"testing"
)

// BenchmarkFamilies times each built-in view family on 1000 Fashion-MNIST
// images (all cores): go test -run X -bench Families ./data
func BenchmarkFamilies(b *testing.B) {
	raw := realFashionMNIST(b)
	im := firstImages(raw.train, 1000)
	for _, spec := range []string{"pixels", "hog", "gabor", "randconv", "lbp"} {
		b.Run(spec, func(b *testing.B) {
			f, args, err := lookupFamily(spec)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := f(context.Background(), args, im, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*im.N), "ns/image")
		})
	}
}

// BenchmarkSampler is the per-batch cost of drawing indices (54400 unlabeled, batch 256).
func BenchmarkSampler(b *testing.B) {
	idx := make([]int, 54400)
	for i := range idx {
		idx[i] = i
	}
	s := NewSampler(idx, 256, 1)
	for b.Loop() {
		s.Next()
	}
}
