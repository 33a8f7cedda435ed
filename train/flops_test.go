package train

import (
	"sync"
	"testing"

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
		var mu sync.Mutex
		var counted float64
		_, err := Updates(cfg, ds, 1, func(int) (nn.Backend, error) {
			return &interposer{CPU: nn.NewCPU(), through: func(name string, _ int, a []any, call func()) {
				if name == "Gemm" {
					mu.Lock()
					counted += 2 * float64(a[2].(int)) * float64(a[3].(int)) * float64(a[4].(int))
					mu.Unlock()
				}
				call()
			}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for _, v := range ds.Views {
			p, err := nn.NewProbe(nn.NewCPU(), nn.Config{Arch: cfg.Arch, In: v.Dim, Classes: ds.Classes, Hidden: cfg.Hidden}, 0)
			if err != nil {
				t.Fatal(err)
			}
			want += updateFLOPs(p, cfg.Batch, cfg.LabeledBatch, !noFeedback)
		}
		if counted != want || want == 0 {
			t.Errorf("no feedback %v: the update's products add up to %g FLOPs, updateFLOPs to %g", noFeedback, counted, want)
		}
	}
}
