package sweep

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	fakeOnce sync.Once
	fakePath string
	fakeErr  error
)

// fakeMCT builds testdata/fakemct, the stand-in trainer, once per test binary.
func fakeMCT(t *testing.T) string {
	t.Helper()
	fakeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fakemct-")
		if err != nil {
			fakeErr = err
			return
		}
		fakePath = filepath.Join(dir, "fakemct")
		out, err := exec.Command("go", "build", "-o", fakePath, "./testdata/fakemct").CombinedOutput()
		if err != nil {
			fakeErr = errors.New(string(out) + err.Error())
		}
	})
	if fakeErr != nil {
		t.Fatalf("build testdata/fakemct: %v", fakeErr)
	}
	return fakePath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fakePath != "" {
		os.RemoveAll(filepath.Dir(fakePath))
	}
	os.Exit(code)
}

const oneRankGrid = `{
	"fixed": {"views": ["hog", "gabor"], "steps": 6, "step-ms": 1},
	"vary": {"algo": ["supervised", "mct"], "seed": [1, 2]}
}`

func TestRunIsIdempotentAndCollects(t *testing.T) {
	bin := fakeMCT(t)
	t.Setenv("SLURM_NTASKS", "")
	grid := writeGrid(t, oneRankGrid)
	dir := filepath.Dir(grid)
	combos, err := Expand(grid)
	if err != nil {
		t.Fatal(err)
	}
	// Leave the last combination unfinished.
	for i := range combos[:3] {
		if err := Run(grid, i, bin); err != nil {
			t.Fatalf("combination %d: %v", i, err)
		}
	}
	sum := filepath.Join(dir, RunsDir, combos[0].Name, SummaryFile)
	before, err := os.Stat(sum)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := Run(grid, 0, bin); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(sum); !after.ModTime().Equal(before.ModTime()) {
		t.Error("a finished combination ran again")
	}

	c, err := Collect(grid)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Table.Groups) != 2 || len(c.Table.Groups[0].Runs) != 2 || len(c.Table.Groups[1].Runs) != 1 {
		t.Fatalf("groups: %+v", c.Table.Groups)
	}
	// fakemct's ensemble accuracy is 0.5 + 0.3·fraction + 0.01·seed + 0.04 for mct.
	if g := c.Table.Groups[0]; g.Algo != "supervised" || abs(g.Test.Mean-0.545) > 1e-12 || abs(g.Test.Std-0.01/1.4142135623730951) > 1e-12 {
		t.Errorf("supervised: %+v", g.Test)
	}
	if len(c.Unfinished) != 1 || filepath.Base(c.Unfinished[0]) != combos[3].Name {
		t.Errorf("unfinished %v", c.Unfinished)
	}
	if !strings.Contains(c.Markdown, "1 runs have not finished: runs/"+combos[3].Name) {
		t.Errorf("markdown does not list the unfinished run:\n%s", c.Markdown)
	}
	for _, f := range []string{ResultsMarkdown, ResultsCSV, RunsCSV, ResultsPlot} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, ResultsPlot))
	if err != nil {
		t.Fatal(err)
	}
	if img, err := png.Decode(bytes.NewReader(b)); err != nil || img.Bounds().Dx() < 300 {
		t.Errorf("plot: %v", err)
	}
	// Collecting the directory finds the same runs.
	c2, err := Collect(dir)
	if err != nil || c2.Table.Markdown() != c.Table.Markdown() {
		t.Errorf("collect by directory: %v\n%s", err, c2.Markdown)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestRunForwardsStopAndResumes(t *testing.T) {
	bin := fakeMCT(t)
	t.Setenv("SLURM_NTASKS", "")
	grid := writeGrid(t, `{"fixed": {"views": ["hog", "gabor"], "steps": 400, "step-ms": 5}}`)
	out := filepath.Join(filepath.Dir(grid), RunsDir, "run")
	errc := make(chan error, 1)
	go func() { errc <- Run(grid, 0, bin) }()
	// The trainer creates its run directory after installing its handlers,
	// and Run listens before it starts the trainer.
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(out, "ckpt")); return err == nil })
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if !errors.Is(err, ErrPreempted) || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Fatalf("stopped run returned %v, want ErrPreempted", err)
	}
	if _, err := os.Stat(filepath.Join(out, SummaryFile)); err == nil {
		t.Fatal("summary.json written by a stopped run")
	}
	if err := Run(grid, 0, bin); err != nil {
		t.Fatal(err)
	}
	resumed, err := os.ReadFile(filepath.Join(out, "resumed.rank0"))
	if err != nil {
		t.Fatalf("second run did not resume: %v", err)
	}
	if s := strings.TrimSpace(string(resumed)); s == "0" || s == "400" {
		t.Errorf("resumed at step %s, want one in between", s)
	}

	// The same configuration without interruption ends with the same parameters.
	ref := writeGrid(t, `{"fixed": {"views": ["hog", "gabor"], "steps": 400, "step-ms": 0}}`)
	if err := Run(ref, 0, bin); err != nil {
		t.Fatal(err)
	}
	a, errA := ReadResult(out)
	b, errB := ReadResult(filepath.Join(filepath.Dir(ref), RunsDir, "run"))
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	for v, sum := range b.Summary.ParamChecksum {
		if a.Summary.ParamChecksum[v] != sum {
			t.Errorf("view %s: resumed checksum %s, uninterrupted %s", v, a.Summary.ParamChecksum[v], sum)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

func TestRunRefuses(t *testing.T) {
	bin := fakeMCT(t)
	grid := writeGrid(t, `{"ranks": 2, "fixed": {"steps": 1}}`)
	t.Setenv("SLURM_NTASKS", "1")
	if err := Run(grid, 0, bin); err == nil || !strings.Contains(err.Error(), "ranks=2 but this SLURM job has SLURM_NTASKS=1: submit it with --ntasks=2") {
		t.Errorf("too few tasks: %v", err)
	}
	t.Setenv("SLURM_NTASKS", "")
	if err := Run(grid, 1, bin); err == nil || !strings.Contains(err.Error(), "index 1 out of range: grid "+grid+" has 1 combinations (0..0)") {
		t.Errorf("index: %v", err)
	}
	// A combination already being run elsewhere is refused, not run twice.
	one := writeGrid(t, `{"fixed": {"steps": 1}}`)
	runs := filepath.Join(filepath.Dir(one), RunsDir)
	if err := os.MkdirAll(runs, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(filepath.Join(runs, ".run.lock"), "run")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	// flock locks belong to the open file, so a second open in this process conflicts too.
	if err := Run(one, 0, bin); err == nil || !strings.Contains(err.Error(), "combination run is being run by another process") {
		t.Errorf("locked: %v", err)
	}
	// A trainer that fails is reported with its status.
	bad := writeGrid(t, `{"fixed": {"no-such-flag": 1}}`)
	if err := Run(bad, 0, bin); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("failing trainer: %v", err)
	}
}
