package sweep

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGridChangedSinceFinished: a finished combination is skipped only while the grid
// still gives it the flags it ran with. Once they change, the trainer is asked (with
// --resume) and judges its run directory: a run of another configuration is refused
// with the trainer's reason, not reported as finished (collect would have shown the
// old result under the new flags); a change that does not alter results (--step-ms,
// for the stand-in trainer) resumes the finished run, which is then skipped again.
func TestGridChangedSinceFinished(t *testing.T) {
	bin := fakeMCT(t)
	t.Setenv("SLURM_NTASKS", "")
	const grid = `{"fixed": {"views": ["hog", "gabor"], "steps": 4, "step-ms": 1, "lr": %s}, "vary": {"seed": [1, 2]}}`
	path := writeGrid(t, strings.Replace(grid, "%s", "0.001", 1))
	rewrite := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	combos, err := Expand(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := filepath.Join(filepath.Dir(path), RunsDir, combos[0].Name, SummaryFile)
	if err := Run(path, 0, bin); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(sum)
	if err != nil {
		t.Fatal(err)
	}
	rewrite(strings.Replace(grid, "%s", "0.002", 1))
	err = Run(path, 0, bin)
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("lr changed since the combination finished: %v, want the trainer's refusal", err)
	}
	if now, _ := os.ReadFile(sum); string(now) != string(first) {
		t.Errorf("a refused run changed %s", sum)
	}
	// The grid as it was: finished, skipped (the trainer would write the record anew).
	record := filepath.Join(filepath.Dir(path), RunsDir, "."+combos[0].Name+".flags")
	skipped := func(what string) {
		t.Helper()
		before, err := os.Stat(record)
		if err != nil {
			t.Fatal(err)
		}
		if err := Run(path, 0, bin); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if after, err := os.Stat(record); err != nil || !os.SameFile(before, after) {
			t.Errorf("%s: the trainer ran again for a finished combination whose flags did not change (%s rewritten)", what, record)
		}
	}
	rewrite(strings.Replace(grid, "%s", "0.001", 1))
	skipped("the grid restored")
	// Only --step-ms changed: the trainer resumes the finished run and accepts it.
	rewrite(strings.Replace(strings.Replace(grid, "%s", "0.001", 1), `"step-ms": 1`, `"step-ms": 2`, 1))
	if err := Run(path, 0, bin); err != nil {
		t.Errorf("--step-ms changed: %v", err)
	}
	if now, _ := os.ReadFile(sum); string(now) != string(first) {
		t.Errorf("--step-ms changed the result:\n%s\nwas\n%s", now, first)
	}
	// The trainer ran and the record holds the new flags: skipped from now on.
	if b, err := os.ReadFile(record); err != nil || !strings.Contains(string(b), "--step-ms=2\n") {
		t.Errorf("%s after --step-ms changed: %q (%v), want the new flags", record, b, err)
	}
	skipped("--step-ms changed, second time")
}
