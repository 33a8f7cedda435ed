package mct

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mct/internal/testenv"
)

// repoRoot is where bench/device-check.sh runs its commands from.
const repoRoot = "../.."

// torchCommand returns the arguments after the interpreter of the one line of
// bench/device-check.sh that runs mct_step.py, with the JSON file it writes replaced
// by out. Shell syntax other than that file name fails the test: the command would
// not be the one the device runs.
func torchCommand(t *testing.T, out string) []string {
	t.Helper()
	script := filepath.Join(repoRoot, "bench", "device-check.sh")
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(src), "\n") {
		if strings.Contains(line, "mct_step.py") && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d lines run mct_step.py, want 1: %q", script, len(found), found)
	}
	f := strings.Fields(found[0])
	i := 0
	for i < len(f) && !strings.HasSuffix(f[i], "mct_step.py") {
		i++
	}
	if i == 0 || f[i-1] != "python3" {
		t.Fatalf("%s: want `python3 bench/mct/mct_step.py ...`, found %q", script, found[0])
	}
	args, wroteOut := []string{f[i]}, false
	for _, a := range f[i+1:] {
		if a == "|" || strings.HasPrefix(a, "2>") || strings.HasPrefix(a, ">") {
			break
		}
		if a == `"$out/torch.json"` {
			a, wroteOut = out, true
		} else if strings.ContainsAny(a, "$\"'`") {
			t.Fatalf("%s: the mct_step.py command has shell syntax %q that this test does not reproduce", script, a)
		}
		args = append(args, a)
	}
	if !wroteOut {
		t.Fatalf("%s: the mct_step.py command does not write \"$out/torch.json\", which the table reads", script)
	}
	return args
}

// TestDeviceCheckTorchCommand runs the PyTorch baseline exactly as bench/device-check.sh
// runs it on a GPU machine, but on the CPU, for one update of a small batch at every
// precision, and reads its JSON as the device check's table does. A baseline script that
// fails or changes its output is then caught here, not on a lent GPU machine.
func TestDeviceCheckTorchCommand(t *testing.T) {
	testenv.Torch(t, *python)
	out := filepath.Join(t.TempDir(), "torch.json")
	// argparse keeps an option's last value: these replace the device's device, length
	// and batch (the probes keep the device's shapes); one thread spares a loaded CI.
	args := append(torchCommand(t, out), "--device", "cpu", "--updates", "1", "--warmup", "0", "--repeats", "1",
		"--batch", "32", "--labeled-batch", "32", "--rows", "64", "--threads", "1", "--precision", "fp32,tf32,bf16")
	cmd := exec.Command(*python, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "OPENBLAS_NUM_THREADS=1") // see BenchmarkMCT
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v", *python, strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if len(lines) != 3 {
		t.Fatalf("mct_step.py printed %d lines, want one JSON line per precision:\n%s", len(lines), stdout)
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("mct_step.py printed %q: %v", l, err)
		}
	}

	type result struct {
		Precision   string    `json:"precision"`
		UpdatesPerS float64   `json:"updates_per_s"`
		LastH       []float64 `json:"last_h"`
	}
	var file struct {
		Device  string   `json:"device"`
		Torch   string   `json:"torch"`
		Results []result `json:"results"`
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if file.Device != "cpu" || file.Torch == "" {
		t.Errorf("torch.json: device %q, torch %q; want cpu and a version", file.Device, file.Torch)
	}
	got := map[string]result{}
	for _, r := range file.Results {
		got[r.Precision] = r
	}
	for _, p := range []string{"fp32", "tf32", "bf16"} {
		r, ok := got[p]
		if !ok {
			t.Fatalf("torch.json has no result for %s: %s", p, raw)
		}
		if !(r.UpdatesPerS > 0) || math.IsInf(r.UpdatesPerS, 0) {
			t.Errorf("%s: updates_per_s %v", p, r.UpdatesPerS)
		}
		if len(r.LastH) != 2 {
			t.Fatalf("%s: last_h %v, want one h per view (2)", p, r.LastH)
		}
	}
	// The same seed gives the same update: TF32 does not exist on a CPU, so tf32 must
	// equal fp32 bit for bit (one thread), while bf16 autocast must change h (its
	// products round to 8 bits).
	if !slices.Equal(got["tf32"].LastH, got["fp32"].LastH) {
		t.Errorf("on the CPU tf32's h %v differs from fp32's %v", got["tf32"].LastH, got["fp32"].LastH)
	}
	var bf16Diff float64
	for v := range 2 {
		bf16Diff = max(bf16Diff, math.Abs(got["bf16"].LastH[v]-got["fp32"].LastH[v]))
	}
	if bf16Diff < 1e-6 {
		t.Errorf("bf16's h %v equals fp32's %v: autocast did not take effect", got["bf16"].LastH, got["fp32"].LastH)
	}
}
