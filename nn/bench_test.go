package nn

import "testing"

// Kernel benchmarks at the default FCNN's sizes (B = 1024, width 1024, 2.9M params).

func BenchmarkAdam(b *testing.B) {
	c := NewCPU()
	const n = 2936842
	w, g, m, v := c.Alloc(n), c.Alloc(n), c.Alloc(n), c.Alloc(n)
	c.Fill(g, n, 0.1)
	h := AdamHyper{StepSize: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, BC2Sqrt: 0.03, OneMinusBeta1: 0.1, OneMinusBeta2: 0.001}
	for b.Loop() {
		c.Adam(w, g, m, v, n, h, nil, nil)
	}
	b.SetBytes(n * 4 * 6)
}

// randomSigns fills x with values of random sign: LeakyReLU's sign test must not
// be a branch the predictor learns.
func randomSigns(x Buf) {
	h := host(x)
	s := uint32(1)
	for i := range h {
		s = s*1664525 + 1013904223
		h[i] = float32(int32(s)) / (1 << 31)
	}
}

func BenchmarkAddBiasLeakyReLU(b *testing.B) {
	c := NewCPU()
	x, bias := c.Alloc(1024*1024), c.Alloc(1024)
	for b.Loop() {
		b.StopTimer()
		randomSigns(x)
		b.StartTimer()
		c.AddBiasLeakyReLU(x, bias, 1024, 1024, 0.01)
	}
	b.SetBytes(1024 * 1024 * 8)
}

func BenchmarkLeakyReLUBackward(b *testing.B) {
	c := NewCPU()
	y, dy := c.Alloc(1024*1024), c.Alloc(1024*1024)
	randomSigns(y)
	for b.Loop() {
		c.LeakyReLUBackward(dy, dy, y, 1024*1024, 0.01)
	}
	b.SetBytes(1024 * 1024 * 12)
}

func BenchmarkBNTrainForwardBackward(b *testing.B) {
	c := NewCPU()
	const rows, cols = 1024, 1024
	x, y, dy := c.Alloc(rows*cols), c.Alloc(rows*cols), c.Alloc(rows*cols)
	st, mean, vr, rm, rv, g, be := c.Alloc(2*cols+1), c.Alloc(cols), c.Alloc(cols), c.Alloc(cols), c.Alloc(cols), c.Alloc(cols), c.Alloc(cols)
	c.Fill(rv, cols, 1)
	c.Fill(g, cols, 1)
	for b.Loop() {
		c.BNStats(st, x, rm, rows, cols)
		c.BNMoments(mean, vr, rm, rv, st, cols, 0.1)
		c.BNNormalize(y, cols, x, mean, vr, g, be, rows, cols, 1e-5)
		c.BNBackwardStats(st, nil, nil, dy, x, mean, vr, rows, cols, 1e-5, 1)
		c.BNBackward(dy, dy, x, mean, vr, g, st, rows, cols, 1e-5, 1)
	}
}
