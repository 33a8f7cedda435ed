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

// BenchmarkMCT times b.N MCT updates of every view in Go, then b.N in PyTorch.
func BenchmarkMCT(b *testing.B) {
	widths, err := list.PositiveInts(*dims)
	if err != nil {
		b.Fatalf("-mct.dims %v", err)
	}
	hid, err := list.PositiveInts(*hidden)
	if err != nil {
		b.Fatalf("-mct.hidden %v", err)
	}
	ds := train.RandomViews(widths, *classes, *rows, 1)
	cfg := train.Defaults()
	cfg.Arch, cfg.Hidden, cfg.Batch, cfg.LabeledBatch = *arch, hid, *batch, *labeled
	cfg.MCTLR, cfg.Hard, cfg.ExactH = cfg.LR/8, *hard, *exactH

	b.StopTimer()
	goRes, err := train.Bench(cfg, ds, train.BenchOptions{Warmup: 1, Updates: b.N})
	if err != nil {
		b.Fatal(err)
	}
	goRate := goRes.UpdatesPerSecond
	b.ReportMetric(goRes.SecondsPerUpdate*1e9, "ns/op")
	b.ReportMetric(goRate, "go_updates/s")
	b.ReportMetric(goRate*float64(*batch), "examples/s/view")
	if !*useTorch {
		return
	}
	args := []string{"mct_step.py", "bench", "--dims", *dims, "--hidden", *hidden, "--arch", *arch,
		"--classes", strconv.Itoa(*classes), "--batch", strconv.Itoa(*batch), "--labeled-batch", strconv.Itoa(*labeled),
		"--rows", strconv.Itoa(*rows), "--threads", strconv.Itoa(runtime.GOMAXPROCS(0)),
		"--updates", strconv.Itoa(b.N), "--warmup", "1", "--repeats", "1", "--lr", fmt.Sprint(cfg.MCTLR)}
	if *hard {
		args = append(args, "--hard")
	}
	if *exactH {
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
		b.Fatalf("%s %s: %v (run with -args -mct.torch=false to time Go alone)", *python, strings.Join(args, " "), err)
	}
	var res struct {
		UpdatesPerS float64  `json:"updates_per_s"`
		Threads     int      `json:"threads"`
		BLAS        []string `json:"blas"`
		Torch       string   `json:"torch"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("mct_step.py bench printed %q: %v", out, err)
	}
	if blas := strings.ToLower(strings.Join(res.BLAS, " ")); !strings.Contains(blas, "openblas") && !strings.Contains(blas, "mkl") {
		b.Fatalf("torch's BLAS is %v, neither OpenBLAS nor MKL: the comparison would be unfair (apt-get install libopenblas0-pthread)", res.BLAS)
	}
	b.ReportMetric(res.UpdatesPerS, "torch_updates/s")
	b.ReportMetric(goRate/res.UpdatesPerS, "go/torch")
	b.Logf("torch %s, %d threads, BLAS %v; Go GOMAXPROCS %d", res.Torch, res.Threads, res.BLAS, runtime.GOMAXPROCS(0))
}
