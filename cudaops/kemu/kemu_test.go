//go:build cgo

package kemu

import (
	"math"
	"testing"

	"mct/nn"
	"mct/nn/nntest"
)

// TestConformance checks every emulated kernel, and probes built on them, against the
// CPU backend (nn's backend contract suite, at the small shapes the emulator affords).
func TestConformance(t *testing.T) { nntest.Conformance(t, New(), nntest.Options{Small: true}) }

func TestPhilox(t *testing.T) {
	k := [2]uint32{0xa4093822, 0x299f31d0}
	for i, v := range Philox(3000, k) {
		u := uint32(i)
		if want := nn.Philox4x32([4]uint32{u, u + 1, u + 2, u + 3}, k)[0]; v != want {
			t.Fatalf("counter %d: kernel %08x, nn %08x", i, v, want)
		}
	}
}

func TestToBF16(t *testing.T) {
	cases := map[float32]uint16{1: 0x3f80, -2: 0xc000, 1.00390625: 0x3f80, 1.01171875: 0x3f82, 3.140625: 0x4049}
	for x, want := range cases {
		if got := ToBF16([]float32{x})[0]; got != want {
			t.Errorf("bf16(%g) = %04x, want %04x", x, got, want)
		}
	}
}

// TestBadLabelIsNaN: a label that is not a class index poisons its row
// (the kernel must not read outside the row) and leaves the others alone.
func TestBadLabelIsNaN(t *testing.T) {
	b := New()
	const rows, cols = 4, 5
	x := b.Alloc(rows * cols)
	b.Upload(x, []float32{1, 2, 3, 4, 5, 1, 1, 1, 1, 1, 0, 0, 0, 0, 9, 2, 2, 2, 2, 2})
	labels, loss, dx := b.Alloc(rows), b.Alloc(rows), b.Alloc(rows*cols)
	b.Upload(labels, []float32{4, 5, -1, 2.5})
	b.SoftmaxCE(loss, dx, x, labels, rows, cols, 1, 1, 0, nil)
	l, d := make([]float32, rows), make([]float32, rows*cols)
	b.Download(l, loss)
	b.Download(d, dx)
	if want := math.Log(math.Exp(1)+math.Exp(2)+math.Exp(3)+math.Exp(4)+math.Exp(5)) - 5; math.Abs(float64(l[0])-want) > 1e-6 {
		t.Errorf("row 0 loss %g, want %g", l[0], want)
	}
	for r := 1; r < rows; r++ {
		if !math.IsNaN(float64(l[r])) || !math.IsNaN(float64(d[r*cols])) {
			t.Errorf("row %d (label out of range): loss %g dx %g, want NaN", r, l[r], d[r*cols])
		}
	}
}
