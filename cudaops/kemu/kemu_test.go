//go:build cgo

package kemu

import (
	"testing"

	"mct/cudaops/backendtest"
	"mct/nn"
)

// TestKernels checks every emulated kernel, and a probe built on them,
// against the CPU backend.
func TestKernels(t *testing.T) {
	backendtest.Run(t, New(), backendtest.Options{Small: true})
}

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
