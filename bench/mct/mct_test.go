package mct

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"mct/internal/list"
	"mct/internal/testenv"
	"mct/train"
)

var (
	dims     = flag.String("mct.dims", "784,324", "view widths, one per view")
	hidden   = flag.String("mct.hidden", "1024,1024,1024", "probe hidden widths")
	arch     = flag.String("mct.arch", "fcnn", "probe architecture: fcnn, mlp, linear")
	classes  = flag.Int("mct.classes", 10, "classes")
	batch    = flag.Int("mct.batch", 1024, "unlabeled rows per update")
	labeled  = flag.Int("mct.labeled-batch", 1024, "labeled rows per update")
	rows     = flag.Int("mct.rows", 8192, "rows of the random feature matrices batches are drawn from")
	hard     = flag.Bool("mct.hard", false, "argmax pseudo-labels instead of sampling")
	exactH   = flag.Bool("mct.exact-h", false, "h from the gradient dot product")
	useTorch = flag.Bool("mct.torch", true, "also time the PyTorch step")
	python   = flag.String("mct.python", "/usr/bin/python3", "the Python with torch (Debian's python3-torch is for /usr/bin/python3)")
)

// problem is the update BenchmarkMCT times, from the -mct.* flags.
type problem struct {
	dims, hidden, arch            string
	classes, batch, labeled, rows int
	hard, exactH                  bool
}

func flagProblem() problem {
	return problem{dims: *dims, hidden: *hidden, arch: *arch, classes: *classes, batch: *batch,
		labeled: *labeled, rows: *rows, hard: *hard, exactH: *exactH}
}

// torchResult is what `mct_step.py bench` prints on stdout.
type torchResult struct {
	UpdatesPerS float64  `json:"updates_per_s"`
	Threads     int      `json:"threads"`
	BLAS        []string `json:"blas"`
	Torch       string   `json:"torch"`
}

// goUpdates times n MCT updates of every view of p in Go (after one untimed update).
func goUpdates(tb testing.TB, p problem, n int) *train.BenchResult {
	tb.Helper()
	widths, err := list.PositiveInts(p.dims)
	if err != nil {
		tb.Fatalf("-mct.dims %v", err)
	}
	hid, err := list.PositiveInts(p.hidden)
	if err != nil {
		tb.Fatalf("-mct.hidden %v", err)
	}
	ds := train.RandomViews(widths, p.classes, p.rows, 1)
	cfg := train.Defaults()
	cfg.Arch, cfg.Hidden, cfg.Batch, cfg.LabeledBatch = p.arch, hid, p.batch, p.labeled
	cfg.MCTLR, cfg.Hard, cfg.ExactH = cfg.LR/8, p.hard, p.exactH
	res, err := train.Bench(cfg, ds, train.BenchOptions{Warmup: 1, Updates: n})
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// torchUpdates times n updates of p in mct_step.py (after one untimed update) with
// GOMAXPROCS threads, and fails tb unless torch runs its products on OpenBLAS or MKL.
func torchUpdates(tb testing.TB, p problem, n int) torchResult {
	tb.Helper()
	args := []string{"mct_step.py", "bench", "--dims", p.dims, "--hidden", p.hidden, "--arch", p.arch,
		"--classes", strconv.Itoa(p.classes), "--batch", strconv.Itoa(p.batch), "--labeled-batch", strconv.Itoa(p.labeled),
		"--rows", strconv.Itoa(p.rows), "--threads", strconv.Itoa(runtime.GOMAXPROCS(0)),
		"--updates", strconv.Itoa(n), "--warmup", "1", "--repeats", "1", "--lr", fmt.Sprint(train.Defaults().LR / 8)}
	if p.hard {
		args = append(args, "--hard")
	}
	if p.exactH {
		args = append(args, "--exact-h")
	}
	cmd := exec.Command(*python, args...)
	// torch.set_num_threads does not reach Debian's OpenBLAS, which starts a thread per
	// core (the oracle's one-thread process has two on two cores): its count is set here.
	cmd.Env = os.Environ()
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" {
		cmd.Env = append(cmd.Env, "OPENBLAS_NUM_THREADS="+strconv.Itoa(runtime.GOMAXPROCS(0)))
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s %s: %v (run with -args -mct.torch=false to time Go alone)", *python, strings.Join(args, " "), err)
	}
	var res torchResult
	if err := json.Unmarshal(out, &res); err != nil {
		tb.Fatalf("mct_step.py bench printed %q: %v", out, err)
	}
	if blas := strings.ToLower(strings.Join(res.BLAS, " ")); !strings.Contains(blas, "openblas") && !strings.Contains(blas, "mkl") {
		tb.Fatalf("torch's BLAS is %v, neither OpenBLAS nor MKL: the comparison would be unfair (apt-get install libopenblas0-pthread)", res.BLAS)
	}
	return res
}

// BenchmarkMCT times b.N MCT updates of every view in Go, then b.N in PyTorch.
func BenchmarkMCT(b *testing.B) {
	p := flagProblem()
	b.StopTimer()
	goRes := goUpdates(b, p, b.N)
	goRate := goRes.UpdatesPerSecond
	b.ReportMetric(goRes.SecondsPerUpdate*1e9, "ns/op")
	b.ReportMetric(goRate, "go_updates/s")
	b.ReportMetric(goRate*float64(p.batch), "examples/s/view")
	if !*useTorch {
		return
	}
	res := torchUpdates(b, p, b.N)
	b.ReportMetric(res.UpdatesPerS, "torch_updates/s")
	b.ReportMetric(goRate/res.UpdatesPerS, "go/torch")
	b.Logf("torch %s, %d threads, BLAS %v; Go GOMAXPROCS %d", res.Torch, res.Threads, res.BLAS, runtime.GOMAXPROCS(0))
}

// TestBenchmarkMCTSmall runs both sides of BenchmarkMCT for one update of a tiny problem,
// with sampled pseudo-labels and approximate h and with -mct.hard -mct.exact-h, so that
// plain `go test` catches a benchmark whose command or output no longer fits
// (TestDeviceCheckTorchCommand covers the device check's other command line).
func TestBenchmarkMCTSmall(t *testing.T) {
	testenv.Torch(t, *python)
	for _, p := range []problem{
		{dims: "12,7", hidden: "16,16", arch: "fcnn", classes: 3, batch: 32, labeled: 16, rows: 128},
		{dims: "12,7,5", hidden: "16", arch: "mlp", classes: 4, batch: 32, labeled: 32, rows: 128, hard: true, exactH: true},
	} {
		g := goUpdates(t, p, 1)
		if !(g.UpdatesPerSecond > 0) || g.Views != len(strings.Split(p.dims, ",")) || g.Batch != p.batch {
			t.Errorf("%+v: Go measured %+v", p, g)
		}
		r := torchUpdates(t, p, 1)
		if !(r.UpdatesPerS > 0) || r.Threads != runtime.GOMAXPROCS(0) || r.Torch == "" {
			t.Errorf("%+v: mct_step.py measured %+v, want a rate, %d threads and torch's version", p, r, runtime.GOMAXPROCS(0))
		}
	}
}
