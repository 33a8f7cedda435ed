//go:build cgo

package main

import (
	"math"
	"testing"

	"mct/cudaops/kemu"
	"mct/nn"
)

// TestUpdateKernelsMatchCPU runs three of the benchmark's MCT updates on the
// CPU backend and on the emulated CUDA kernels and compares the feedback h of
// every view: the kernels run the whole update like the CPU does.
func TestUpdateKernelsMatchCPU(t *testing.T) {
	cfg := nn.Config{Arch: "fcnn", In: 12, Classes: 6, Hidden: []int{16, 16, 16}}
	run := func(b nn.Backend) []float64 {
		u, err := newUpdate(b, cfg, 2, 24, 7)
		if err != nil {
			t.Fatal(err)
		}
		var h []float64
		for i := 0; i < 3; i++ {
			h = append(h, u.run()...)
		}
		return h
	}
	hc, hk := run(nn.NewCPU()), run(kemu.New())
	for i := range hc {
		if math.IsNaN(hc[i]) || hc[i] == 0 || math.Abs(hc[i]-hk[i]) > 1e-4*math.Abs(hc[i])+1e-7 {
			t.Fatalf("h: cpu %v, kernels %v", hc, hk)
		}
	}
	if u, _ := newUpdate(nn.NewCPU(), cfg, 3, 24, 7); u.flopsPerUpdate() != 18*float64(u.views[0].p.NumParams())*24*3 {
		t.Fatal("flops per update")
	}
	// Three views take the mean-of-others path.
	u, err := newUpdate(nn.NewCPU(), cfg, 3, 24, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range u.run() {
		if math.IsNaN(h) {
			t.Fatal("h is NaN with three views")
		}
	}
}
