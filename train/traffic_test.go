package train

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"testing"

	"mct/nn"
)

var (
	trafficBW   = flag.Float64("traffic.bw", 4.8e12, "BenchmarkDeviceTraffic: device memory bandwidth, bytes/s (H200 HBM3e, nominal)")
	trafficRate = flag.Float64("traffic.rate", 870e12, "BenchmarkDeviceTraffic: GEMM rate, FLOP/s (H200 bf16, measured: bench/RESULTS.md)")
)

// opBytes is the device memory an operation must read and write at least, in bytes
// (float32 elements, each once), and its FLOPs: the floor of its time on a GPU. a holds
// its arguments as the interposer passes them (nn.Backend's order).
func opBytes(name string, a []any) (bytes, flops float64) {
	i := func(k int) float64 { return float64(a[k].(int)) }
	nonzero := func(k int) float64 { // a beta that makes the output be read too
		if a[k].(float32) != 0 {
			return 1
		}
		return 0
	}
	switch name {
	case "Gemm", "GemmStrided": // fp32 operands and result, whatever the tensor cores compute in
		m, n, k := i(2), i(3), i(4)
		beta := 8
		if name == "GemmStrided" {
			beta = 10
		}
		return 4 * (m*k + k*n + m*n*(1+nonzero(beta))), 2 * m * n * k
	case "CopyCols":
		return 4 * i(6) * i(7) * (2 + nonzero(8)), 0
	case "FoldCols":
		return 4 * i(4) * (i(1) + i(3)), 0
	case "UnfoldCols":
		return 4 * i(4) * (i(1)*(1+nonzero(6)) + i(3)), 0
	case "GatherRows":
		return 8 * i(2) * i(4), 0
	case "AddBiasLeakyReLU", "Softmax", "BNNormalize", "BNBackwardStats":
		r, c := 2, 3
		if name == "BNNormalize" {
			r, c = 7, 8
		} else if name == "BNBackwardStats" {
			r, c = 7, 8 // and the cols-long dγ, dβ, not counted
		}
		return 8 * i(r) * i(c), 0
	case "BNBackward":
		return 12 * i(7) * i(8), 0
	case "BNStats", "ColSums":
		r, c := 2, 3
		if name == "BNStats" {
			r, c = 3, 4
		}
		return 4 * i(r) * i(c), 0
	case "DropoutMask", "SampleGumbel", "Argmax", "CountEqual":
		r := map[string]int{"DropoutMask": 1, "SampleGumbel": 2, "Argmax": 2, "CountEqual": 3}[name]
		return 4 * i(r) * i(r+1), 0
	case "SoftmaxCE": // reads x, writes dx unless nil (and reads it when accumulating)
		x := 4 * i(4) * i(5)
		if dx, _ := a[1].(nn.Buf); dx != nil {
			x += 4 * i(4) * i(5) * (1 + nonzero(8))
		}
		return x, 0
	case "MeanOthers": // every block read by the others' means, every mean written
		v, n := i(2), i(3)
		return 4 * n * v * v, 0
	case "Adam": // w, g, m, v read; w, m, v written
		return 28 * i(4), 0
	case "ClipNorm": // the norm's pass, then the scaling's (taken as always clipping)
		return 12 * i(1), 0
	case "ClipCoef": // the norm's pass
		return 4 * i(2), 0
	case "LeakyReLUBackward":
		return 12 * i(3), 0
	case "Mul":
		return 12 * i(2), 0
	case "Axpy":
		return 12 * i(3), 0
	case "Scale":
		return 8 * i(1), 0
	case "Copy":
		return 8 * i(2), 0
	case "Fill":
		return 4 * i(1), 0
	case "DotTo":
		return 8 * i(3), 0
	case "Mean":
		return 4 * i(2), 0
	case "BNMoments": // a few vectors of cols
		return 4 * 8 * i(5), 0
	}
	panic("opBytes: no model for " + name)
}

// BenchmarkDeviceTraffic predicts the floor of one MCT update on a GPU at the device
// check's shape (2 views of 1024, 1000 classes, reference fcnn, B = 1024 unlabeled and
// 1024 labeled rows), from the operations the update issues, counted on the CPU: each
// operation takes at least its bytes at the memory bandwidth or its FLOPs at the GEMM
// rate. Views sharing one GPU share both, so their floors add. Every byte is taken to go
// to device memory: an L2 cache that keeps a block between two kernels lowers the true
// floor. Prints a table by operation; nothing is timed.
//
//	go test ./train -run '^$' -bench DeviceTraffic -benchtime 1x [-args -traffic.bw 3.35e12]
func BenchmarkDeviceTraffic(b *testing.B) {
	cfg := Defaults()
	cfg.Hidden, cfg.Batch, cfg.LabeledBatch = []int{1024, 1024, 1024}, 1024, 1024
	ds := RandomViews([]int{1024, 1024}, 1000, 4096, 1)
	type tally struct{ calls, bytes, flops float64 }
	count := func(updates int) map[string]tally {
		t := map[string]tally{}
		eachOp(b, cfg, ds, updates, func(name string, a []any) {
			by, fl := opBytes(name, a)
			x := t[name]
			t[name] = tally{x.calls + 1, x.bytes + by, x.flops + fl}
		})
		return t
	}
	for b.Loop() {
		// What one update adds, set-up excluded.
		one, two := count(1), count(2)
		per := map[string]tally{}
		var total tally
		var floor float64
		for name, x := range two {
			d := tally{x.calls - one[name].calls, x.bytes - one[name].bytes, x.flops - one[name].flops}
			if d.calls > 0 {
				per[name] = d
				total = tally{total.calls + d.calls, total.bytes + d.bytes, total.flops + d.flops}
			}
		}
		names := slices.SortedFunc(maps.Keys(per), func(p, q string) int {
			return int(per[q].bytes - per[p].bytes)
		})
		fmt.Printf("\n| operation | calls | MB | GFLOP | floor µs |\n|---|---:|---:|---:|---:|\n")
		for _, name := range names {
			x := per[name]
			t := max(x.bytes / *trafficBW, x.flops / *trafficRate)
			floor += t
			fmt.Printf("| %s | %.0f | %.1f | %.1f | %.1f |\n", name, x.calls, x.bytes/1e6, x.flops/1e9, t*1e6)
		}
		fmt.Printf("| all | %.0f | %.1f | %.1f | %.1f |\n\n", total.calls, total.bytes/1e6, total.flops/1e9, floor*1e6)
		fmt.Printf("at %.2f TB/s and %.0f TFLOP/s: an update takes at least %.3f ms (%.0f updates/s), %.1f %% of the GEMM rate;\n"+
			"its products alone %.3f ms, its bytes alone %.3f ms\n",
			*trafficBW/1e12, *trafficRate/1e12, floor*1e3, 1/floor, 100*total.flops/floor / *trafficRate,
			total.flops / *trafficRate * 1e3, total.bytes / *trafficBW * 1e3)
	}
}

// TestTrafficModelCovers: every operation an update issues, with dropout and exact h or
// without, has a model in opBytes (BenchmarkDeviceTraffic panics on one without), and
// the model's Adam bytes are two steps of 7 float32 per parameter on every view.
func TestTrafficModelCovers(t *testing.T) {
	for _, set := range []func(*Config){
		func(c *Config) { c.Dropout = 0.1 },
		func(c *Config) { c.Hard, c.ExactH = true, true },
	} {
		cfg := Defaults()
		cfg.Hidden, cfg.Batch, cfg.LabeledBatch = []int{8, 8, 8}, 16, 8
		set(&cfg)
		ds := RandomViews([]int{5, 6}, 4, 64, 3)
		var adam float64
		eachOp(t, cfg, ds, 1, func(name string, a []any) {
			if by, _ := opBytes(name, a); name == "Adam" {
				adam += by
			}
		})
		var want float64
		for _, p := range viewProbes(t, cfg, ds) {
			want += 2 * 28 * float64(p.NumParams())
		}
		if adam != want {
			t.Errorf("Adam moves %g bytes per update in the model, want %g", adam, want)
		}
	}
}
