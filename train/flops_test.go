package train

import (
	"sync"
	"testing"

	"mct/data"
	"mct/nn"
)

// TestUpdateFLOPs: the FLOPs mct bench divides by its time are those of the products an
// update issues, counted call by call on every view, with and without feedback and with
// a labeled batch smaller than the unlabeled one.
func TestUpdateFLOPs(t *testing.T) {
	for _, noFeedback := range []bool{false, true} {
		cfg := Defaults()
		cfg.Hidden, cfg.Batch, cfg.LabeledBatch, cfg.Seed, cfg.NoFeedback = []int{8, 8, 8}, 16, 8, 3, noFeedback
		ds := RandomViews([]int{5, 6, 7}, 4, 64, 3)
		var counted float64
		eachOp(t, cfg, ds, 1, func(name string, a []any) {
			if name == "Gemm" || name == "GemmStrided" {
				counted += 2 * float64(a[2].(int)) * float64(a[3].(int)) * float64(a[4].(int))
			}
		})
		var want float64
		for _, p := range viewProbes(t, cfg, ds) {
			want += updateFLOPs(p, cfg.Batch, cfg.LabeledBatch, !noFeedback)
		}
		if counted != want || want == 0 {
			t.Errorf("no feedback %v: the update's products add up to %g FLOPs, updateFLOPs to %g", noFeedback, counted, want)
		}
	}
}

// eachOp runs n MCT updates of cfg on every view of ds (Updates) and calls f with the name
// and arguments of every operation they queue (interposer), one call at a time.
func eachOp(tb testing.TB, cfg Config, ds *data.Dataset, n int, f func(name string, args []any)) {
	tb.Helper()
	var mu sync.Mutex
	_, err := Updates(cfg, ds, n, func(int) (nn.Backend, error) {
		return &interposer{CPU: nn.NewCPU(), through: func(name string, _ int, a []any, call func()) {
			mu.Lock()
			f(name, a)
			mu.Unlock()
			call()
		}}, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// viewProbes is a probe of cfg's architecture for every view of ds, on the CPU (their
// parameter counts and products are what the tests need).
func viewProbes(tb testing.TB, cfg Config, ds *data.Dataset) []*nn.Probe {
	tb.Helper()
	var ps []*nn.Probe
	for _, v := range ds.Views {
		p, err := nn.NewProbe(nn.NewCPU(), nn.Config{Arch: cfg.Arch, In: v.Dim, Classes: ds.Classes, Hidden: cfg.Hidden}, 0)
		if err != nil {
			tb.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}
