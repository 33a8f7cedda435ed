package main

import (
	"math"
	"testing"
)

// TestPredictByHand checks Predict against a case worked out on paper:
// 1 GB/s, 1 µs; 2 views of 10 classes, 1000 parameters, two BatchNorm reduces of 100
// floats, 3 loss float64s; 8 GPUs (4 replicas) with 50 rows each; compute 1 ms + 2 ms·50/100.
//
//	compute   = 1e-3 + 2e-3·0.5                                   = 2000 µs
//	gather    = logits 4·2·50·10 = 4000 B: ½·4000/1e9 + 1 µs       = 3 µs
//	          + h 16 B: ½·16/1e9 + 1 µs                            = 1.008 µs
//	reduce    = 2 gradients of 4000 B: 2·(2·¾·4000/1e9 + 6 µs)     = 24 µs
//	          + 2 BatchNorm of 400 B: 2·(1.5·400/1e9 + 6 µs)       = 13.2 µs
//	          + losses 24 B: 1.5·24/1e9 + 6 µs                     = 6.036 µs
//	total     = 2000 + 4.008 + 43.236                              = 2047.244 µs
func TestPredictByHand(t *testing.T) {
	w := Workload{Views: 2, Classes: 10, Params: 1000, BNFloats: []int{100, 100}, LossFloat64s: 3}
	net := Network{Bandwidth: 1e9, Latency: 1e-6}
	c := Compute{Fixed: 1e-3, PerBatch: 2e-3, RefBatch: 100}
	p, err := Predict(w, net, c, 8, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"compute", p.Compute, 2000e-6},
		{"gather", p.Gather, 4.008e-6},
		{"reduce", p.Reduce, 43.236e-6},
		{"total", p.Total(), 2047.244e-6},
		{"comm share", p.CommShare(), 47.244 / 2047.244},
		{"gather bytes", p.GatherBytes, 4016},
		{"reduce bytes", p.ReduceBytes, 8824},
		{"replicas", float64(p.Replicas), 4},
		{"global batch", float64(p.GlobalBatch), 200},
	} {
		if math.Abs(tc.got-tc.want) > 1e-12*math.Max(1, math.Abs(tc.want)) {
			t.Errorf("%s = %.15g, want %.15g", tc.name, tc.got, tc.want)
		}
	}

	// One replica per view: no pool, only the peer exchange.
	p, err = Predict(w, net, c, 2, 100)
	if err != nil {
		t.Fatal(err)
	}
	if p.Reduce != 0 || p.ReduceBytes != 0 || math.Abs(p.Gather-(0.5*8000/1e9+1e-6+1.008e-6)) > 1e-15 {
		t.Errorf("2 GPUs: reduce %g s (%g B), gather %g s; want 0, 0, 6.008 µs", p.Reduce, p.ReduceBytes, p.Gather)
	}
	if _, err := Predict(w, net, c, 7, 50); err == nil {
		t.Error("7 GPUs for 2 views: no error")
	}
}

// TestBNReducesPerLayer decodes the all-reduce bytes `mct bench` measured under
// mpirun -np 4 with --hidden 256,256,256 (view 784 wide, 341 002 parameters):
// 2 752 664 = 2·4·341 002 + 4 reduces × 3 layers × 4·513 + 8·3.
func TestBNReducesPerLayer(t *testing.T) {
	k, err := bnReducesPerLayer(2752664, 341002, 3, 256, 3)
	if err != nil || k != 4 {
		t.Fatalf("got %d, %v; want 4", k, err)
	}
	if _, err := bnReducesPerLayer(2752664+4, 341002, 3, 256, 3); err == nil {
		t.Error("inexact byte count accepted")
	}
}
