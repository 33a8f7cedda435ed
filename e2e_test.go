package main

// End-to-end tests of the mct binary: the real data, the local transport, Open MPI's
// mpirun, checkpoints, signals. They build ./mct once into a temporary directory.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mct/ckpt"
	"mct/data"
	"mct/internal/testenv"
	"mct/train"
)

var bin string // the mct binary under test

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mct-e2e")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "mct")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build mct: %v\n%s", err, out)
		os.Exit(1)
	}
	// Built views are shared by every test (and every run of the suite).
	os.Setenv("MCT_CACHE_DIR", filepath.Join(os.TempDir(), "mct-test-cache"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// small is a run that finishes in seconds: tiny probes, one short MCT epoch.
var small = []string{"--views", "pixels,hog", "--hidden", "32,32,32", "--batch", "1024", "--epochs", "1",
	"--warmup-epochs", "3", "--val", "1000"}

type summary struct {
	Algo          string            `json:"algo"`
	Views         []string          `json:"views"`
	Updates       int               `json:"updates"`
	ParamChecksum map[string]string `json:"param_checksum"`
	TestAccuracy  struct {
		Ensemble     float64              `json:"ensemble"`
		PerView      map[string]float64   `json:"per_view"`
		SharedErrors []train.SharedErrors `json:"shared_errors"`
	} `json:"test_accuracy"`
	WarmupTestAccuracy *struct {
		Ensemble float64 `json:"ensemble"`
	} `json:"warmup_test_accuracy"`
	ExamplesPerSecond float64 `json:"examples_per_second_per_view"`
}

// sameParams fails t unless got holds every view's parameters bit for bit as want does
// (and want holds some).
func sameParams(t *testing.T, what string, got, want summary) {
	t.Helper()
	if len(want.ParamChecksum) == 0 || !maps.Equal(got.ParamChecksum, want.ParamChecksum) {
		t.Errorf("%s: param_checksum %v, want %v", what, got.ParamChecksum, want.ParamChecksum)
	}
}

func readSummary(t *testing.T, dir string) summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// mct runs the binary (under mpirun when np > 0) and returns its combined output.
func mct(t *testing.T, np int, args ...string) (string, error) {
	t.Helper()
	cmd, out := mctCmd(t, np, args...)
	err := cmd.Run()
	return out.String(), err
}

// mctCmd is the command mct runs, its combined output going to out.
func mctCmd(t *testing.T, np int, args ...string) (cmd *exec.Cmd, out *bytes.Buffer) {
	t.Helper()
	if np > 0 {
		cmd = mpirun(t, np, args...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	out = new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// startMCT starts mctCmd for a test that signals or kills the run while it works.
func startMCT(t *testing.T, np int, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd, out := mctCmd(t, np, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

func mpirun(t *testing.T, np int, args ...string) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		testenv.Missing(t, "mpirun not found (apt-get install openmpi-bin)")
	}
	cmd := exec.Command("mpirun", append([]string{"--oversubscribe", "-np", fmt.Sprint(np), bin}, args...)...)
	cmd.Env = append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	return cmd
}

func trainRun(t *testing.T, np int, out string, extra ...string) summary {
	t.Helper()
	args := append(append([]string{"train", "--out", out}, small...), extra...)
	o, err := mct(t, np, args...)
	if err != nil {
		t.Fatalf("mct %v: %v\n%s", args, err, o)
	}
	return readSummary(t, out)
}

// localRun is the reference: every view in one process. Shared by the tests below.
var localRun struct {
	dir string
	s   summary
}

func reference(t *testing.T) summary {
	t.Helper()
	if localRun.dir == "" {
		localRun.dir = filepath.Join(os.TempDir(), fmt.Sprintf("mct-e2e-ref-%d", os.Getpid()))
		os.RemoveAll(localRun.dir)
		localRun.s = trainRun(t, 0, localRun.dir)
	}
	return localRun.s
}

func TestTrainEvalPredictExport(t *testing.T) {
	s := reference(t)
	if s.Algo != "mct" || len(s.ParamChecksum) != 2 || s.Updates == 0 || s.ExamplesPerSecond <= 0 || s.WarmupTestAccuracy == nil {
		t.Fatalf("summary.json incomplete: %+v", s)
	}
	// Tiny probes on 600 labels still learn: well above chance (0.1).
	if s.TestAccuracy.Ensemble < 0.6 {
		t.Errorf("ensemble test accuracy %.3f: the probes did not learn", s.TestAccuracy.Ensemble)
	}
	o, err := mct(t, 0, "eval", "--json", localRun.dir) // the directory after a flag
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, o)
	}
	var acc struct {
		Ensemble     float64
		SharedErrors []train.SharedErrors `json:"shared_errors"`
	}
	if err := json.Unmarshal([]byte(o), &acc); err != nil || acc.Ensemble != s.TestAccuracy.Ensemble {
		t.Errorf("eval ensemble %v (%v), summary.json says %v", acc.Ensemble, err, s.TestAccuracy.Ensemble)
	}
	// One pair of views, both wrong at most as often as the better view is wrong; the same
	// numbers as the run's own summary.
	if se := acc.SharedErrors; len(se) != 1 || se[0].A != s.Views[0] || se[0].B != s.Views[1] ||
		se[0].BothWrong > 1-max(s.TestAccuracy.PerView[se[0].A], s.TestAccuracy.PerView[se[0].B])+1e-9 ||
		se[0].SameWrong > se[0].BothWrong || se[0].BothWrong <= 0 || !reflect.DeepEqual(se, s.TestAccuracy.SharedErrors) {
		t.Errorf("eval shared_errors %+v for views %v with accuracies %v; summary.json says %+v",
			se, s.Views, s.TestAccuracy.PerView, s.TestAccuracy.SharedErrors)
	}
	// predict's classes, scored against the test labels, give the same ensemble accuracy.
	pf := filepath.Join(t.TempDir(), "pred.npy")
	if o, err := mct(t, 0, "predict", localRun.dir, "--out", pf); err != nil {
		t.Fatalf("predict: %v\n%s", err, o)
	}
	a, err := data.ReadNPY(pf)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := a.Int32s()
	truth, terr := train.Predict(localRun.dir, "", "")
	if err != nil || terr != nil || len(pred) != len(truth.Labels) {
		t.Fatalf("predictions %d (%v), test labels (%v)", len(pred), err, terr)
	}
	right := 0
	for i, y := range truth.Labels {
		if pred[i] == y {
			right++
		}
	}
	if got := float64(right) / float64(len(pred)); got != s.TestAccuracy.Ensemble {
		t.Errorf("predict's classes score %v, summary.json's ensemble %v", got, s.TestAccuracy.Ensemble)
	}
	st := filepath.Join(t.TempDir(), "hog.safetensors")
	if o, err := mct(t, 0, "export", "--run", localRun.dir, "--view", "hog", "--out", st); err != nil {
		t.Fatalf("export: %v\n%s", err, o)
	}
	ts, _, err := ckpt.ReadSafetensors(st)
	if err != nil || len(ts) == 0 {
		t.Fatalf("exported probe: %v", err)
	}
	o, err = mct(t, 0, "export", "--run", localRun.dir, "--view", "gabor", "--out", st)
	if want := "--view gabor: not a probe of " + localRun.dir + " (its probes: pixels, hog)"; err == nil || !strings.Contains(o, want) {
		t.Errorf("export of a view the run lacks: err %v, output %q; want %q", err, o, want)
	}
	// Another configuration may not write into a run directory.
	o, err = mct(t, 0, append(append([]string{"train", "--out", localRun.dir}, small...), "--seed", "2")...)
	if err == nil || !strings.Contains(o, "holds a run of another configuration") {
		t.Errorf("a run with another seed into %s: err %v, output %q", localRun.dir, err, o)
	}
	sameParams(t, "summary.json after a refused run", readSummary(t, localRun.dir), s)
	for _, f := range []string{"config.json", "metrics.jsonl", "curves.png"} {
		if _, err := os.Stat(filepath.Join(localRun.dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestBadInvocations(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--algo", "bogus"}, `--algo "bogus": expected supervised, cotrain, mct or mpl`},
		{[]string{"train", "--views", "hog"}, "--algo mct needs at least 2 views"},
		{[]string{"train", "--views", "hog,nosuchview", "--out", t.TempDir()}, "nosuchview"},
		{[]string{"train", "--data", t.TempDir()}, "manifest.json"},
		{[]string{"eval", "--run", t.TempDir()}, "not a finished run"},
		{[]string{"eval"}, "no run directory: mct eval DIR"},
		{[]string{"eval", t.TempDir(), "extra"}, `unexpected argument "extra"`},
		{[]string{"eval", "--json", t.TempDir(), "extra"}, `unexpected argument "extra"`},
		{[]string{"predict", "runs/a", "--run", "runs/b"}, "two run directories, runs/a and --run runs/b: give one"},
		{[]string{"predict", "runs/a", "--out", "p.npy", "--features", "hog"}, `invalid value "hog" for flag -features: expected VIEW=FILE.npy`},
		{[]string{"predict", "runs/a", "--out", "p.npy", "--features", "hog=a.npy", "--features", "hog=b.npy"}, "view hog given twice"},
		{[]string{"predict", "runs/a", "--out", "p.npy", "--features", "hog=a.npy", "--data", "d"}, "--data and --features: give one"},
		{[]string{"data", "import", "--view", "x"}, `invalid value "x" for flag -view: expected NAME=TRAIN.npy,TEST.npy`},
		{[]string{"data", "import", "--view", "a=1.npy,2.npy", "--view", "a=3.npy,4.npy"}, "view a given twice"}, // the second replaced the first
		{[]string{"bench", "typo", "--updates", "1"}, `unexpected argument "typo"`},                              // not 10 updates, --updates ignored
		{[]string{"bench", "--dims", "784"}, "mct bench: --dims 784: one view; an MCT update needs at least 2 (e.g. --dims 784,324)"},
		{[]string{"train", "--lr", "abc"}, `invalid value "abc" for flag -lr`},
		{[]string{"report"}, "expected run directories"},
		{[]string{"bench", "--op-times", "--segment-times"}, "--segment-times and --op-times: choose one"},
		{[]string{"train", "--labeled", "1"}, "--labeled 1: expected a fraction in (0, 1)"},
		{[]string{"train", "--val", "0"}, "--val 0: at least 1 validation example is needed"},
		{[]string{"train", "--lr", "NaN"}, "--lr NaN: expected > 0"},
		{[]string{"train", "--dropout", "1"}, "--dropout 1: expected a probability in [0, 1)"},
		{[]string{"train", "--clip", "-1"}, "--clip -1: expected > 0, or 0 for no clipping"},
		{[]string{"train", "--labeled-batch", "-1"}, "--labeled-batch -1: expected at least 2"},
		{[]string{"train", "--labeled-batch", "1"}, "--labeled-batch 1: expected at least 2 (BatchNorm's batch statistics)"},                                     // was a panic
		{[]string{"train", "--labeled", "0.00001", "--out", t.TempDir()}, "--labeled 1e-05 gives 1 labeled example(s), fewer than the 2 a training batch needs"}, // was a panic
		{[]string{"train", "--patience", "0"}, "--patience 0: expected at least 1"},                                                                              // was a run with no MCT epoch
		{[]string{"train", "--hidden", "16"}, "--arch fcnn --hidden 16: fcnn needs at least 2 hidden widths"},
		{[]string{"train", "--hidden", "32,,32"}, `invalid value "32,,32" for flag -hidden: "" is not a positive integer`},
		{[]string{"train", "--device", "gpu"}, `mct train: --device "gpu": expected auto or one of cpu`},
		{[]string{"train", "--device", "cuda"}, "mct train: --device cuda: this mct was built without CUDA"}, // not "rank 0: …"
		{[]string{"bench", "--batch", "0"}, "--batch 0: expected at least 2"},                                // was a panic in a rank
		{[]string{"bench", "--updates", "0"}, "--updates 0: expected at least 1"},
		{[]string{"bench", "--precision", "fp64"}, `--precision "fp64": expected bf16, tf32 or fp32`},
		{append(append([]string{"train", "--labeled", "0.5", "--out", t.TempDir()}, small...), "--val", "30000"), "no unlabeled examples left (every known label is in the labeled or validation set"},
	} {
		o, err := mct(t, 0, c.args...)
		if err == nil || !strings.Contains(o, c.want) {
			t.Errorf("mct %v: err %v, output %q; want a failure mentioning %q", c.args, err, o, c.want)
		}
		if n := strings.Count(strings.TrimSpace(o), "\n"); n > 0 {
			t.Errorf("mct %v: want one error line, got %d:\n%s", c.args, n+1, o)
		}
	}
}

// TestFeatureFiles: predict's --features VIEW=FILE.npy takes the run's longest view
// followed by '=', so a view spec with '=' in it names its own view (it was split at its
// first '=': view hog:cell, file 7=hog.npy).
func TestFeatureFiles(t *testing.T) {
	views := []string{"hog:cell=7", "hog", "a=b"}
	got, err := featureFiles(views, []string{"hog:cell=7=h7.npy", "hog=x=1.npy", "a=b=c.npy"})
	want := map[string]string{"hog:cell=7": "h7.npy", "hog": "x=1.npy", "a=b": "c.npy"}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("files %v (%v), want %v", got, err, want)
	}
	// Not one of the views: split at the first '=', for PredictFeatures to name the views.
	if got, _ := featureFiles(views, []string{"pixels=p.npy"}); !maps.Equal(got, map[string]string{"pixels": "p.npy"}) {
		t.Errorf("an unknown view: files %v", got)
	}
	if _, err := featureFiles(views, []string{"hog:cell=7=a.npy", "hog:cell=7=b.npy"}); err == nil || err.Error() != "--features: view hog:cell=7 given twice" {
		t.Errorf("a view given twice: error %v", err)
	}
}

// TestHelpEverywhere: -h or --help after any command, also where an operand (a grid, a
// directory) is expected, and mct help COMMAND, print that command's usage on stdout and
// exit 0; it is never taken for a file name.
func TestHelpEverywhere(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "-h"}, "-device"},
		{[]string{"sweep", "--help"}, "usage: mct sweep"},
		{[]string{"sweep", "list", "--help"}, "usage: mct sweep"},
		{[]string{"sweep", "collect", "-h"}, "usage: mct sweep"},
		{[]string{"sweep", "run", "--help"}, "usage: mct sweep run GRID"},
		{[]string{"sweep", "run", "grid.json", "-h"}, "usage: mct sweep run GRID"},
		{[]string{"data", "--help"}, "usage: mct data"},
		{[]string{"data", "info", "--help"}, "usage: mct data info DIR"},
		{[]string{"data", "import", "-h"}, "usage: mct data import"},
		{[]string{"bench", "--help"}, "-segment-times"},
		{[]string{"report", "-h"}, "usage: mct report"},
		{[]string{"help"}, "usage: mct <command>"},
		{[]string{"help", "-h"}, "usage: mct <command>"},
		{[]string{"help", "predict"}, "-features"},
		{[]string{"help", "data", "import"}, "usage: mct data import"},
		{[]string{"help", "sweep", "run"}, "usage: mct sweep run GRID"},
	} {
		// Help asked for goes to stdout (mct train -h | grep lr), nothing to stderr.
		cmd := exec.Command(bin, c.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		o, err := cmd.Output()
		if err != nil || !strings.Contains(string(o), c.want) || stderr.Len() > 0 {
			t.Errorf("mct %v: err %v, stdout %q, stderr %q; want success and %q on stdout", c.args, err, o, stderr.String(), c.want)
		}
	}
}

// TestBadEnvironment: a misspelt value of an environment switch is one error line naming
// it, not a silent default.
func TestBadEnvironment(t *testing.T) {
	for _, c := range []struct {
		env, value string
		args       []string
		want       string
	}{
		{"MCT_CUDA_GRAPHS", "no", []string{"train"}, "environment: MCT_CUDA_GRAPHS=no: expected 1 or 0 (or unset for the default)"},
		{"MCT_RESIDENT", "yes", []string{"bench", "--updates", "1"}, "MCT_RESIDENT=yes: expected 1 or 0"},
		{"MCT_BLAS_THREADS", "four", []string{"train"}, "MCT_BLAS_THREADS=four: expected a positive number of threads"},
	} {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(c.env, c.value)
			o, err := mct(t, 0, c.args...)
			if err == nil || !strings.Contains(o, c.want) || strings.Count(strings.TrimSpace(o), "\n") > 0 {
				t.Errorf("%s=%s mct %v: err %v, output %q; want one error line mentioning %q", c.env, c.value, c.args, err, o, c.want)
			}
		})
	}
}

// The MPI transport gives the same bits as the local one: that equality is the main test
// of the MPI code (DESIGN.md).
func TestMPIMatchesLocal(t *testing.T) {
	ref := reference(t)
	s := trainRun(t, 2, t.TempDir())
	sameParams(t, "mpirun -np 2 against local", s, ref)
}

// MPL's two probes on one view run as two ranks under mpirun, each loading the one view,
// and end where one process does.
func TestMPIMPL(t *testing.T) {
	mpl := []string{"--algo", "mpl", "--views", "hog"}
	local := trainRun(t, 0, t.TempDir(), mpl...)
	if !slices.Equal(local.Views, []string{"hog#1", "hog#2"}) || local.Updates == 0 {
		t.Fatalf("--algo mpl --views hog: probes %v, %d updates; want hog#1, hog#2 and some updates", local.Views, local.Updates)
	}
	sameParams(t, "mpl under mpirun -np 2 against local", trainRun(t, 2, t.TempDir(), mpl...), local)
}

// Two replicas per view split the global batch and all-reduce gradients and BatchNorm
// sums: the result equals one process up to float summation order, and the replicas stay
// bit-identical (the trainer checks that before writing the summary). Compared over the
// supervised warmup (--epochs 0): over MCT epochs, rounding differences flip a sampled
// pseudo-label now and then and the runs part ways, so the MCT step with replicas is
// compared with PyTorch in train/oracle_test.go instead.
func TestMPIReplicas(t *testing.T) {
	one, four := t.TempDir(), t.TempDir()
	trainRun(t, 0, one, "--epochs", "0")
	trainRun(t, 4, four, "--epochs", "0")
	for _, v := range []string{"pixels", "hog"} {
		a, _, err := ckpt.ReadSafetensors(filepath.Join(one, "model-"+v+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := ckpt.ReadSafetensors(filepath.Join(four, "model-"+v+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if e := relErr(a[i].Data, b[i].Data); e > 1e-5 || math.IsNaN(e) {
				t.Errorf("view %s tensor %s: relative difference %.3g between -np 4 and one process", v, a[i].Name, e)
			}
		}
	}
}

func relErr(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		d += (float64(a[i]) - float64(b[i])) * (float64(a[i]) - float64(b[i]))
		n += float64(a[i]) * float64(a[i])
	}
	return math.Sqrt(d / math.Max(n, 1e-30))
}

// TestMPIRefusedOnce: a job every rank refuses for the same reason (the world size, a
// flag) says so in one line, rank 0's, not one per rank, and fails fast; so does a job
// only one rank refuses (its environment differs, as on another node), with that rank's
// line, where the others used to wait in their first collective for ever.
func TestMPIRefusedOnce(t *testing.T) {
	for _, c := range []struct {
		np   int
		args []string
		want string
		env  string // VAR=VALUE in the last rank's environment alone
	}{
		{2, append([]string{"train", "--out", t.TempDir()}, small...), "mct train: rank 1: environment: MCT_CUDA_GRAPHS=yes: expected 1 or 0", "MCT_CUDA_GRAPHS=yes"},
		{3, append([]string{"train", "--out", t.TempDir()}, small...), "mct train: world size 3 is not a multiple of the 2 views: run mpirun -np 2 or -np 4", ""},
		{2, append(append([]string{"train", "--out", t.TempDir()}, small...), "--lr", "NaN"), "mct train: --lr NaN: expected > 0", ""},
		// --quiet silences progress, not the reason (it went to the discarded progress writer).
		{2, append(append([]string{"train", "--quiet", "--out", t.TempDir()}, small...), "--dropout", "1"), "mct train: --dropout 1: expected a probability in [0, 1)", ""},
		{3, []string{"bench", "--hidden", "8,8", "--updates", "1"}, "mct bench: world size 3 is not a multiple of the 2 views", ""},
		{2, []string{"bench", "--updates", "0"}, "mct bench: --updates 0: expected at least 1", ""},
	} {
		start := time.Now()
		np := c.np
		if c.env != "" {
			np-- // mpirun -np N-1 mct ARGS : -np 1 env VAR=VALUE mct ARGS
		}
		cmd, out := mctCmd(t, np, c.args...)
		if c.env != "" {
			cmd.Args = append(cmd.Args, append([]string{":", "-np", "1", "env", c.env, bin}, c.args...)...)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hung := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
		err := cmd.Wait()
		hung.Stop()
		o := out.String()
		if err == nil {
			t.Errorf("mpirun -np %d mct %v succeeded", c.np, c.args)
		}
		if n := strings.Count(o, c.want); n != 1 {
			t.Errorf("mpirun -np %d mct %v: want %q once, got it %d times:\n%s", c.np, c.args, c.want, n, o)
		}
		if time.Since(start) > 30*time.Second {
			t.Errorf("mpirun -np %d mct %v took %v to fail", c.np, c.args, time.Since(start))
		}
	}
}

// Kill -9 one rank mid-run: mpirun ends the job promptly; --resume finishes it and the
// final parameters equal an uninterrupted run's. A flipped byte in the newest checkpoint
// is detected and the previous committed one is used.
func TestMPIKillAndResume(t *testing.T) {
	ref := reference(t)
	dir := t.TempDir()
	args := append([]string{"train", "--out", dir, "--checkpoint-every", "5", "--keep", "3"}, small...)
	cmd, out := startMCT(t, 2, args...)
	waitFor(t, 120*time.Second, func() bool { return committedAfter(dir, 10) })
	pids, _ := exec.Command("pgrep", "-f", "^"+bin+" train --out "+dir).Output()
	fields := strings.Fields(string(pids))
	if len(fields) == 0 {
		t.Fatalf("no rank process found\n%s", out.String())
	}
	var pid int
	fmt.Sscan(fields[len(fields)-1], &pid)
	syscall.Kill(pid, syscall.SIGKILL)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("mpirun exited 0 after a rank was killed")
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("mpirun still running 30 s after a rank was killed")
	}
	steps, err := ckpt.Steps(dir)
	if err != nil || len(steps) < 2 {
		t.Fatalf("committed steps %v (%v)", steps, err)
	}
	newest := filepath.Join(dir, "ckpt", fmt.Sprintf("step-%d", steps[len(steps)-1]), "rank-1.mct")
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(newest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := mct(t, 2, append(args, "--resume")...)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, o)
	}
	if !strings.Contains(o, newest) {
		t.Errorf("the damaged file %s is not named:\n%s", newest, o)
	}
	if !strings.Contains(o, "resumed from the checkpoint of update") {
		t.Errorf("did not resume:\n%s", o)
	}
	s := readSummary(t, dir)
	sameParams(t, "resumed against uninterrupted", s, ref)
}

// SIGTERM (and SLURM's SIGUSR1) stops the run at the next update with a checkpoint and
// exit status 0; --resume finishes with the same parameters.
func TestSignalCheckpointsAndExitsZero(t *testing.T) {
	ref := reference(t)
	dir := t.TempDir()
	args := append([]string{"train", "--out", dir}, small...)
	cmd, out := startMCT(t, 0, args...)
	waitFor(t, 120*time.Second, func() bool { return committedAfter(dir, -1) })
	cmd.Process.Signal(syscall.SIGUSR1)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGUSR1: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "--resume") {
		t.Errorf("no line saying how to resume:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "summary.json")); err == nil {
		t.Errorf("summary.json written by a stopped run")
	}
	if o, err := mct(t, 0, append(args, "--resume")...); err != nil {
		t.Fatalf("resume: %v\n%s", err, o)
	}
	s := readSummary(t, dir)
	sameParams(t, "resumed against uninterrupted", s, ref)
}

// SIGTERM during --algo cotrain (a round's training: epochs of supervised steps) stops
// the run at the next epoch boundary with a checkpoint and exit status 0 within seconds;
// --resume finishes with the parameters and accuracies of an uninterrupted run.
func TestSignalDuringCotrain(t *testing.T) {
	flags := []string{"--algo", "cotrain", "--views", "pixels,hog", "--hidden", "32,32,32", "--val", "1000",
		"--warmup-epochs", "20", "--patience", "20", "--cotrain-rounds", "3"}
	refDir := t.TempDir()
	if o, err := mct(t, 0, append([]string{"train", "--quiet", "--out", refDir}, flags...)...); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, o)
	}
	ref := readSummary(t, refDir)
	dir := t.TempDir()
	args := append([]string{"train", "--out", dir}, flags...)
	cmd, out := startMCT(t, 0, args...)
	// After the first round's record, rounds 2 and 3 (seconds of training) remain.
	waitFor(t, 120*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
		return bytes.Contains(b, []byte(`"phase":"cotrain"`))
	})
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
	}
	took := time.Since(sent)
	t.Logf("exited %.2f s after SIGTERM", took.Seconds())
	if took > 10*time.Second {
		t.Errorf("exited %.1f s after SIGTERM: it must stop at the next epoch boundary", took.Seconds())
	}
	if !strings.Contains(out.String(), "stopped by a signal at co-training round") || !strings.Contains(out.String(), "--resume") {
		t.Errorf("no line saying where it stopped and how to resume:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "summary.json")); err == nil {
		t.Fatalf("summary.json written by a stopped run:\n%s", out.String())
	}
	o, err := mct(t, 0, append(args, "--resume")...)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, o)
	}
	if !strings.Contains(o, "resumed from the checkpoint of co-training round") {
		t.Errorf("did not resume:\n%s", o)
	}
	s := readSummary(t, dir)
	sameParams(t, "resumed against uninterrupted", s, ref)
	for v := range ref.ParamChecksum {
		if s.TestAccuracy.PerView[v] != ref.TestAccuracy.PerView[v] {
			t.Errorf("view %s: test accuracy %v resumed, %v uninterrupted", v, s.TestAccuracy.PerView[v], ref.TestAccuracy.PerView[v])
		}
	}
	if s.TestAccuracy.Ensemble != ref.TestAccuracy.Ensemble {
		t.Errorf("test ensemble %v resumed, %v uninterrupted", s.TestAccuracy.Ensemble, ref.TestAccuracy.Ensemble)
	}
}

// SIGUSR1 while the views are built (cold cache) stops mct after the view being built,
// before training, alone and under mpirun -np 2, with exit status 0 (a sweep requeues
// the task), the line saying so, that view cached and no run directory.
func TestSignalDuringViewBuild(t *testing.T) {
	for _, np := range []int{0, 2} {
		t.Run(fmt.Sprintf("np%d", np), func(t *testing.T) {
			cache, dir := t.TempDir(), filepath.Join(t.TempDir(), "run")
			// gabor first: the local run builds it first, and rank 0 builds it under mpirun
			// (a view of ~10 s on two cores) while rank 1 builds pixels at once and waits.
			cmd, out := startMCT(t, np, "train", "--cache", cache, "--views", "gabor,pixels", "--out", dir)
			building := func(name string) bool {
				m, _ := filepath.Glob(filepath.Join(cache, "fashion-mnist-*", name))
				return len(m) > 0
			}
			waitFor(t, 120*time.Second, func() bool { return building("gabor.lock") })
			if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit after SIGUSR1 during the view build: %v\n%s", err, out.String())
			}
			if n := strings.Count(out.String(), "stopped by a signal while building the views"); n != 1 {
				t.Errorf("the stop is told %d times, want once:\n%s", n, out.String())
			}
			if !building(filepath.Join("gabor", "manifest.json")) {
				t.Errorf("the view built when the signal came is not cached:\n%s", out.String())
			}
			if np == 0 && building("pixels") {
				t.Errorf("the view after the signal was built:\n%s", out.String())
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("a run directory was made by a run stopped before training:\n%s", out.String())
			}
		})
	}
}

// committedAfter reports whether the run directory holds a committed step > step.
func committedAfter(dir string, step int64) bool {
	steps, err := ckpt.Steps(dir)
	return err == nil && len(steps) > 0 && steps[len(steps)-1] > step
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("condition not reached within %v", limit)
}

// A run stopped under mpirun -np 2 (SIGUSR1 forwarded by mpirun, as SLURM's warning is)
// resumes under -np 4: every replica loads its view's checkpoint.
func TestMPIResumeWithMoreReplicas(t *testing.T) {
	dir := t.TempDir()
	args := append([]string{"train", "--out", dir, "--checkpoint-every", "5"}, small...)
	cmd, out := startMCT(t, 2, args...)
	waitFor(t, 120*time.Second, func() bool { return committedAfter(dir, 5) })
	cmd.Process.Signal(syscall.SIGUSR1)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mpirun after SIGUSR1: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "summary.json")); err == nil {
		t.Fatal("the stopped run wrote summary.json")
	}
	o, err := mct(t, 4, append(args, "--resume")...)
	if err != nil {
		t.Fatalf("resume with -np 4: %v\n%s", err, o)
	}
	if !strings.Contains(o, "resumed from the checkpoint of update") || !strings.Contains(o, "2 views × 2 replicas") {
		t.Errorf("did not resume with 2 replicas:\n%s", o)
	}
	if s := readSummary(t, dir); s.TestAccuracy.Ensemble < 0.6 {
		t.Errorf("resumed run: ensemble %.3f", s.TestAccuracy.Ensemble)
	}
}

// TestImportTrulyUnlabeled: a user's own embeddings where most train rows have no label
// (-1): import, train MCT, and check that only known labels are used for training and
// validation, and that the pseudo-label accuracy is measured on known labels only.
func TestImportTrulyUnlabeled(t *testing.T) {
	const nTrain, nTest, known, classes = 3000, 600, 300, 3
	in := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	// Two views of the same 3 classes: class centres plus noise, in 8 and 6 dimensions.
	example := func(c int32, dim int, salt float64) []float32 {
		x := make([]float32, dim)
		for j := range x {
			x[j] = float32(math.Sin(float64(int(c)*dim+j)*salt)*2 + rng.NormFloat64())
		}
		return x
	}
	write := func(name string, a *data.Array) string {
		p := filepath.Join(in, name)
		if err := data.WriteNPY(p, a); err != nil {
			t.Fatal(err)
		}
		return p
	}
	split := func(n int, unknownFrom int) (ytrue []int32, y []int32, va, vb []float32) {
		for i := 0; i < n; i++ {
			c := int32(rng.IntN(classes))
			ytrue = append(ytrue, c)
			if i >= unknownFrom {
				y = append(y, data.Unknown)
			} else {
				y = append(y, c)
			}
			va, vb = append(va, example(c, 8, 1.3)...), append(vb, example(c, 6, 2.9)...)
		}
		return
	}
	yTrue, yTrain, aTr, bTr := split(nTrain, known)
	yTest, _, aTe, bTe := split(nTest, nTest)
	args := []string{"data", "import", "--classes", fmt.Sprint(classes), "--out", filepath.Join(in, "ds"),
		"--labels", write("ytr.npy", data.NewInt64([]int{nTrain}, yTrain)) + "," + write("yte.npy", data.NewInt64([]int{nTest}, yTest)),
		"--view", "a=" + write("a-tr.npy", data.NewFloat32([]int{nTrain, 8}, aTr)) + "," + write("a-te.npy", data.NewFloat32([]int{nTest, 8}, aTe)),
		"--view", "b=" + write("b-tr.npy", data.NewFloat32([]int{nTrain, 6}, bTr)) + "," + write("b-te.npy", data.NewFloat32([]int{nTest, 6}, bTe))}
	if out, err := mct(t, 0, args...); err != nil {
		t.Fatalf("mct %v: %v\n%s", args, err, out)
	}
	if out, _ := mct(t, 0, "data", "info", filepath.Join(in, "ds")); !strings.Contains(out, "train labels: 300 known, 2700 unknown (-1)") {
		t.Fatalf("data info:\n%s", out)
	}
	run := filepath.Join(in, "run")
	args = []string{"train", "--data", filepath.Join(in, "ds"), "--views", "a,b", "--labeled", "0.5", "--val", "60",
		"--hidden", "16,16,16", "--batch", "256", "--epochs", "1", "--warmup-epochs", "20", "--quiet", "--out", run}
	if out, err := mct(t, 0, args...); err != nil {
		t.Fatalf("mct %v: %v\n%s", args, err, out)
	}
	var s struct {
		Labeled      int `json:"labeled"`
		TestAccuracy struct {
			Ensemble float64 `json:"ensemble"`
		} `json:"test_accuracy"`
	}
	b, err := os.ReadFile(filepath.Join(run, "summary.json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		t.Fatalf("summary.json: %v\n%s", err, b)
	}
	if s.Labeled != known/2 || s.TestAccuracy.Ensemble < 0.9 {
		t.Fatalf("labeled %d (want %d of the %d known), test ensemble %.3f (want ≥ 0.9 on these separable classes)", s.Labeled, known/2, known, s.TestAccuracy.Ensemble)
	}
	// The rows nobody labelled, predicted from their raw features as imported: right about as
	// often as on the test split (their true classes are known here).
	pf, qf := filepath.Join(in, "pred.npy"), filepath.Join(in, "probs.npy")
	args = []string{"predict", run, "--features", "a=" + filepath.Join(in, "a-tr.npy"), "--features", "b=" + filepath.Join(in, "b-tr.npy"), "--out", pf, "--probs", qf}
	if out, err := mct(t, 0, args...); err != nil || !strings.Contains(out, fmt.Sprintf("mct predict: the ensemble's classes of %d examples written to %s, their probabilities to %s\n", nTrain, pf, qf)) {
		t.Fatalf("mct %v: %v\n%s", args, err, out)
	}
	a, err := data.ReadNPY(pf)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := a.Int32s()
	if err != nil || len(pred) != nTrain {
		t.Fatalf("%s: %d predictions (%v), want %d", pf, len(pred), err, nTrain)
	}
	q := readFloats(t, qf, nTrain*classes)
	right := 0
	for i := known; i < nTrain; i++ {
		if pred[i] == yTrue[i] {
			right++
		}
	}
	for i := range nTrain {
		row := q[i*classes : (i+1)*classes]
		if sum := row[0] + row[1] + row[2]; math.Abs(float64(sum)-1) > 1e-5 || slices.Index(row, slices.Max(row)) != int(pred[i]) {
			t.Fatalf("row %d: probabilities %v (sum %v), class %d: want a distribution whose most likely class is the class", i, row, sum, pred[i])
		}
	}
	acc := float64(right) / float64(nTrain-known)
	t.Logf("predict --features: %.4f right on the unlabeled train rows; test ensemble %.4f", acc, s.TestAccuracy.Ensemble)
	if acc < s.TestAccuracy.Ensemble-0.03 {
		t.Errorf("predict --features: %.3f right on the unlabeled train rows, the test ensemble %.3f", acc, s.TestAccuracy.Ensemble)
	}
	// 90 of the unlabeled pool's 2790 rows have a known label: the pseudo-label accuracy
	// is over those: each seen once an epoch, and up to 26 more draws when the last of
	// the 11 batches of 256 wraps into the next shuffle. Counting the unknown rows as misses would put
	// it below 90/2790 ≈ 0.03; chance is 1/3.
	m, err := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(m)), "\n") {
		var rec struct {
			Phase  string `json:"phase"`
			Record *struct {
				PseudoAcc   []float64 `json:"pseudo_acc"`
				PseudoKnown int       `json:"pseudo_known"`
			} `json:"record"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Phase != "mct" || rec.Record == nil {
			continue
		}
		p := rec.Record
		if p.PseudoKnown < 90 || p.PseudoKnown > 90+26 || len(p.PseudoAcc) != 2 || p.PseudoAcc[0] < 0.5 || p.PseudoAcc[1] < 0.5 {
			t.Fatalf("pseudo-label accuracy %v over %d rows: want it over the 90 known rows only (well above chance 1/3)", p.PseudoAcc, p.PseudoKnown)
		}
		return
	}
	t.Fatalf("no MCT record in metrics.jsonl:\n%s", m)
}

// --resume where nothing was checkpointed (a sweep's first try, or a mistyped --out)
// says that it starts from the beginning, and does.
func TestResumeWithoutCheckpointSaysSo(t *testing.T) {
	dir := t.TempDir()
	o, err := mct(t, 0, append([]string{"train", "--algo", "supervised", "--out", dir, "--resume"}, small...)...)
	if err != nil {
		t.Fatalf("train --resume into an empty directory: %v\n%s", err, o)
	}
	if !strings.Contains(o, "no committed checkpoint in "+dir+", so the run starts from the beginning") {
		t.Errorf("no word that nothing was resumed:\n%s", o)
	}
	if s := readSummary(t, dir); s.Algo != "supervised" || len(s.ParamChecksum) != 2 {
		t.Errorf("summary %+v", s)
	}
}

// A grid with combinations that cannot run fails at `sweep list`, one line for each of
// them, before any job is submitted; the ones that can run are not named.
func TestSweepListChecksCombos(t *testing.T) {
	dir := t.TempDir()
	grid := filepath.Join(dir, "grid.json")
	write := func(vary string) {
		if err := os.WriteFile(grid, []byte(`{"fixed": {"epochs": 1}, "vary": `+vary+`}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"algo": ["mct", "mpl"], "views": [["hog", "gabor"], ["hog"]]}`)
	o, err := mct(t, 0, "sweep", "list", grid)
	for _, want := range []string{
		"combination 1 (algo-mct_views-hog): --algo mct needs at least 2 views, got 1 (hog)",
		"combination 2 (algo-mpl_views-hog+gabor): --algo mpl trains two probes on one view",
		"2 of the 4 combinations cannot run (above): change the grid",
	} {
		if err == nil || !strings.Contains(o, want) {
			t.Errorf("sweep list of a grid with bad combinations: err %v, output %q; want it to say %q", err, o, want)
		}
	}
	if strings.Contains(o, "combination 0") || strings.Contains(o, "combination 3") {
		t.Errorf("sweep list named a combination that can run:\n%s", o)
	}
	write(`{"algo": ["mct"], "views": [["hog", "gabor"]], "lr": ["fast"]}`)
	if o, err := mct(t, 0, "sweep", "list", grid); err == nil || !strings.Contains(o, `invalid value "fast" for flag -lr`) {
		t.Errorf("sweep list of a grid with a bad flag value: err %v, output %q", err, o)
	}
	write(`{"algo": ["supervised", "mct"], "views": [["hog", "gabor"]]}`)
	if o, err := mct(t, 0, "sweep", "list", grid); err != nil || strings.Count(o, "\n") != 2 {
		t.Errorf("sweep list of a good grid: err %v, output %q", err, o)
	}
	// One "ranks" for every case: MPL's two probes fit 2 ranks, three views do not.
	cases := filepath.Join(dir, "cases.json")
	if err := os.WriteFile(cases, []byte(`{"ranks": 2, "cases": [{"algo": "mpl", "views": ["hog"]},
		{"algo": "mct", "views": ["hog", "gabor", "pixels"]}], "vary": {"seed": [1, 2]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err = mct(t, 0, "sweep", "list", cases)
	if want := `combination 2 (algo-mct_views-hog+gabor+pixels_seed-1): the grid's "ranks" 2 is not a multiple of its 3 probes`; err == nil || !strings.Contains(o, want) || strings.Contains(o, "combination 0") {
		t.Errorf("sweep list of a grid whose case has 3 views for 2 ranks: err %v, output %q; want it to say %q, and only of the MCT case", err, o, want)
	}
	// The grid jobs/slurm/README.md starts users with: 4 runs, every one mct train accepts.
	if o, err := mct(t, 0, "sweep", "list", "jobs/slurm/example-grid.json"); err != nil || strings.Count(o, "\n") != 4 {
		t.Errorf("sweep list jobs/slurm/example-grid.json: err %v, output %q; want 4 combinations", err, o)
	}
}

// readFloats reads an NPY file of n float32 values.
func readFloats(t *testing.T, path string, n int) []float32 {
	t.Helper()
	a, err := data.ReadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.Float32s()
	if err != nil || len(x) != n {
		t.Fatalf("%s: %d values (%v), want %d", path, len(x), err, n)
	}
	return x
}

// TestResultsOnStdout: mct train's results table goes to stdout once (rank 0's, under
// mpirun too), --quiet or not, and the progress to stderr: mct train > results.txt keeps
// the table.
func TestResultsOnStdout(t *testing.T) {
	for _, np := range []int{0, 2} {
		for _, quiet := range []bool{false, true} {
			args := append([]string{"train", "--algo", "supervised", "--out", t.TempDir()}, small...)
			if quiet {
				args = append(args, "--quiet")
			}
			cmd, _ := mctCmd(t, np, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("mct %v: %v\n%s%s", args, err, stdout.String(), stderr.String())
			}
			o, e := stdout.String(), stderr.String()
			if strings.Count(o, "\nsupervised ") != 1 || strings.Count(o, "\nensemble ") != 1 || strings.Contains(e, "\nensemble ") {
				t.Errorf("np %d, quiet %v: want one results table on stdout and none on stderr; stdout:\n%s\nstderr:\n%s", np, quiet, o, e)
			}
			if wrote := strings.Contains(e, "] wrote "); wrote == quiet {
				t.Errorf("np %d, quiet %v: progress on stderr %v:\n%s", np, quiet, wrote, e)
			}
		}
	}
}
