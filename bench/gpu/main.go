// Command mct-gpu-bench times the MCT update (DESIGN.md "The MCT step") on a
// compute backend and prints a table against PyTorch's implementation of the
// same update (bench/gpu/mct_step.py, run first by bench/gpu/gpu-check.sh) and
// against cuBLAS's bf16 GEMM rate.
//
//	mct-gpu-bench [--precision fp32,tf32,bf16] [--torch torch.json] [--updates 100]
//
// Built with -tags cuda it runs on the GPU; `--backend cpu` runs the same
// update on the CPU backend (small shapes: a check of the step, not a
// benchmark of the CPU).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"mct/nn"
)

type result struct {
	Precision     string  `json:"precision"`
	UpdatesPerSec float64 `json:"updates_per_s"`
}

// torchResults is what mct_step.py writes.
type torchResults struct {
	Device  string   `json:"device"`
	Torch   string   `json:"torch"`
	Results []result `json:"results"`
}

func main() {
	backend := flag.String("backend", "cuda", "cuda or cpu")
	precs := flag.String("precision", "fp32,tf32,bf16", "GEMM precisions to time (cuda backend)")
	batch := flag.Int("batch", 1024, "examples per batch (labeled and unlabeled)")
	in := flag.Int("in", 1024, "features per view")
	classes := flag.Int("classes", 1000, "classes")
	hidden := flag.String("hidden", "1024,1024,1024", "FCNN widths")
	views := flag.Int("views", 2, "views")
	updates := flag.Int("updates", 100, "timed updates per precision")
	warmup := flag.Int("warmup", 10, "untimed updates first")
	torchFile := flag.String("torch", "", "PyTorch results (JSON from mct_step.py) to compare with")
	gemmN := flag.Int("gemm", 8192, "size of the square bf16 GEMM measuring the roofline (0: skip)")
	flag.Parse()

	var widths []int
	for _, f := range strings.Split(*hidden, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 {
			fail("--hidden %q: want comma-separated positive widths", *hidden)
		}
		widths = append(widths, w)
	}
	cfg := nn.Config{Arch: "fcnn", In: *in, Classes: *classes, Hidden: widths}

	var torch torchResults
	if *torchFile != "" {
		data, err := os.ReadFile(*torchFile)
		if err != nil {
			fail("read PyTorch results: %v", err)
		}
		if err := json.Unmarshal(data, &torch); err != nil {
			fail("%s: not mct_step.py output: %v", *torchFile, err)
		}
	}

	b, device, closeFn, err := open(*backend)
	if err != nil {
		fail("%v", err)
	}
	defer closeFn()
	var rows []result
	var peak float64
	var flops float64
	// One set of models serves every precision: the timing does not depend
	// on how far training has gone.
	u, err := newUpdate(b, cfg, *views, *batch, 1)
	if err != nil {
		fail("%v", err)
	}
	flops = u.flopsPerUpdate()
	for _, prec := range strings.Split(*precs, ",") {
		if err := setPrecision(b, prec); err != nil {
			fail("%v", err)
		}
		for i := 0; i < *warmup; i++ {
			u.run()
		}
		b.Sync()
		start := time.Now()
		var h []float64
		for i := 0; i < *updates; i++ {
			h = u.run()
		}
		b.Sync()
		el := time.Since(start)
		rows = append(rows, result{Precision: prec, UpdatesPerSec: float64(*updates) / el.Seconds()})
		fmt.Printf("%s %s: %d updates in %v (%s), last h %.4g\n", *backend, prec, *updates, el.Round(time.Millisecond), u, h)
	}
	if *gemmN > 0 {
		if peak, err = bf16Rate(b, *gemmN); err != nil {
			fail("%v", err)
		}
	}

	fmt.Printf("\nMCT update: %d views, B=%d, FCNN %v, in %d, %d classes; %.1f GFLOP/update (18·params·B per view)\n",
		*views, *batch, widths, *in, *classes, flops/1e9)
	fmt.Printf("device: %s\n", device)
	if torch.Device != "" {
		fmt.Printf("PyTorch %s on %s\n", torch.Torch, torch.Device)
	}
	if peak > 0 {
		fmt.Printf("cuBLAS bf16 GEMM (%d³, bf16 in, fp32 accumulate): %.1f TFLOP/s\n", *gemmN, peak/1e12)
	}
	fmt.Printf("\n%-10s %12s %14s %12s %14s %12s\n", "precision", "updates/s", "ms/update", "examples/s", "vs PyTorch", "of bf16 GEMM")
	for _, r := range rows {
		ratio, frac := "-", "-"
		for _, t := range torch.Results {
			if t.Precision == r.Precision && t.UpdatesPerSec > 0 {
				ratio = fmt.Sprintf("%.2f×", r.UpdatesPerSec/t.UpdatesPerSec)
			}
		}
		if peak > 0 {
			frac = fmt.Sprintf("%.1f%%", 100*r.UpdatesPerSec*flops/peak)
		}
		fmt.Printf("%-10s %12.1f %14.3f %12.0f %14s %12s\n", "mct "+r.Precision, r.UpdatesPerSec, 1e3/r.UpdatesPerSec,
			r.UpdatesPerSec*float64(*batch), ratio, frac)
	}
	for _, t := range torch.Results {
		frac := "-"
		if peak > 0 {
			frac = fmt.Sprintf("%.1f%%", 100*t.UpdatesPerSec*flops/peak)
		}
		fmt.Printf("%-10s %12.1f %14.3f %12.0f %14s %12s\n", "torch "+t.Precision, t.UpdatesPerSec, 1e3/t.UpdatesPerSec,
			t.UpdatesPerSec*float64(*batch), "1.00×", frac)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "mct-gpu-bench: "+format+"\n", a...)
	os.Exit(1)
}
