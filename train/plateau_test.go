package train

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// TestPlateauMatchesPyTorch checks the MCT phase's learning-rate schedule against
// torch.optim.lr_scheduler.ReduceLROnPlateau(mode="max", factor=0.5, patience=2,
// threshold=0) on a metric sequence with ties, a dip and two reductions.
func TestPlateauMatchesPyTorch(t *testing.T) {
	metrics := []float64{0.5, 0.6, 0.6, 0.59, 0.6, 0.7, 0.7, 0.7, 0.7, 0.65}
	// By hand: ties are not improvements; the third bad epoch in a row halves the rate.
	want := []float64{1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25}
	p := newPlateau(1, 0.5, 2)
	for i, m := range metrics {
		if lr := float64(p.observe(m)); lr != want[i] {
			t.Fatalf("epoch %d (metric %g): lr %g, want %g", i+1, m, lr, want[i])
		}
	}
	needTorch(t)
	js, _ := json.Marshal(metrics)
	out, err := exec.Command(systemPython, "-c", `
import json, sys, torch
w = torch.nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([w], lr=1.0)
s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2, threshold=0)
lrs = []
for m in json.loads(sys.argv[1]):
    s.step(m)
    lrs.append(opt.param_groups[0]["lr"])
print(json.dumps(lrs))
`, string(js)).Output()
	if err != nil {
		t.Fatalf("PyTorch: %v", err)
	}
	var torchLRs []float64
	if err := json.Unmarshal(out, &torchLRs); err != nil {
		t.Fatalf("PyTorch output %q: %v", out, err)
	}
	for i := range want {
		if torchLRs[i] != want[i] {
			t.Fatalf("epoch %d: PyTorch lr %g, the schedule here %g", i+1, torchLRs[i], want[i])
		}
	}
}
