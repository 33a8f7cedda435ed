package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"mct/internal/list"
)

// bench is the part of `mct bench --json` this program reads.
type bench struct {
	Views            int              `json:"views"`
	Replicas         int              `json:"replicas"`
	Transport        string           `json:"transport"`
	Batch            int              `json:"batch"`
	SecondsPerUpdate float64          `json:"seconds_per_update"`
	CommPerUpdate    float64          `json:"comm_seconds_per_update"`
	BytesPerUpdate   map[string]int64 `json:"bytes_per_update"`
	ParamsPerView    int64            `json:"params_per_view_max"`
	LogitsExchange   string           `json:"logits_exchange"`
}

// run is one measured layout: the best (fastest) of the repeats.
type run struct {
	Mode  string // "strong" or "weak"
	Ranks int    // MPI processes; 0 for the local transport (one process)
	bench
}

// CommShare is rank 0's fraction of the update inside collectives (waiting included).
func (r run) CommShare() float64 { return r.CommPerUpdate / r.SecondsPerUpdate }

func (r run) layout() string {
	if r.Ranks == 0 {
		return fmt.Sprintf("local, %d views (goroutines, 1 process)", r.Views)
	}
	s := fmt.Sprintf("mpirun -np %d (%d views × %d replicas)", r.Ranks, r.Views, r.Replicas)
	if r.Ranks > runtime.NumCPU() {
		s += fmt.Sprintf(", oversubscribed: %d ranks on %d cores", r.Ranks, runtime.NumCPU())
	}
	return s
}

func main() {
	if err := mainErr(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scaling:", err)
		os.Exit(1)
	}
}

func mainErr(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("scaling", flag.ContinueOnError)
	mct := fs.String("mct", "./mct", "the mct binary (go build -o mct .)")
	npList := fs.String("np", "2,4", "MPI world sizes to measure (multiples of the views)")
	dims := fs.String("dims", "784,324", "view widths of the random data (one view each)")
	hidden := fs.String("hidden", "256,256,256", "probe hidden widths (equal widths: the model decodes BatchNorm bytes with them)")
	strong := fs.Int("batch", 1024, "strong scaling: global unlabeled batch")
	weak := fs.Int("per-replica", 512, "weak scaling: unlabeled batch per replica (global = per-replica × replicas)")
	updates := fs.Int("updates", 5, "timed updates per run")
	warmup := fs.Int("warmup", 1, "untimed updates per run")
	repeat := fs.Int("repeat", 2, "runs per layout; the fastest is kept (the machine is shared)")
	png := fs.String("plot", "bench/scaling/scaling.png", "PNG to draw")
	bw := fs.Float64("bw", 25e9, "model: bandwidth per rank and direction, bytes/s (HDR InfiniBand 200 Gb/s)")
	lat := fs.Float64("latency", 5e-6, "model: seconds per ring step")
	gpuMS := fs.Float64("gpu-ms", 12.1, "model: measured ms per update on one GPU per view (H200, bf16, bench/RESULTS.md)")
	floorMS := fs.Float64("floor-ms", 0.307, "model: floor of one view's update on its GPU, ms: its bytes at 4.8 TB/s, all through HBM, and products at 870 TFLOP/s (train's BenchmarkDeviceTraffic: half of 0.614)")
	refBatch := fs.Int("ref-batch", 1024, "model: the batch those ms were measured at, and the weak-scaling rows per replica")
	refClasses := fs.Int("ref-classes", 1000, "model: classes of the reference workload")
	refParams := fs.Int64("ref-params", 6224872, "model: parameters per view of the reference workload (mct bench --dims 1024,1024 --classes 1000)")
	refHidden := fs.String("ref-hidden", "1024,1024,1024", "model: BatchNorm layer widths of the reference FCNN")
	gpus := fs.String("gpus", "2,8,64,512", "model: GPU counts to predict")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hw, err := list.PositiveInts(*hidden)
	if err != nil {
		return fmt.Errorf("--hidden: %w", err)
	}
	for _, h := range hw {
		if h != hw[0] {
			return fmt.Errorf("--hidden %s: widths differ; use equal widths so the BatchNorm bytes decode", *hidden)
		}
	}
	nps, err := list.PositiveInts(*npList)
	if err != nil {
		return fmt.Errorf("--np: %w", err)
	}
	widths, err := list.PositiveInts(*dims)
	if err != nil {
		return fmt.Errorf("--dims: %w", err)
	}
	views := len(widths)
	if views < 2 {
		return fmt.Errorf("--dims %s: one view; MCT needs at least 2", *dims)
	}
	for _, np := range nps {
		if np%views != 0 {
			return fmt.Errorf("--np %d: not a multiple of %d views", np, views)
		}
	}
	rh, err := list.PositiveInts(*refHidden)
	if err != nil {
		return fmt.Errorf("--ref-hidden: %w", err)
	}
	gs, err := list.PositiveInts(*gpus)
	if err != nil {
		return fmt.Errorf("--gpus: %w", err)
	}
	for _, g := range gs {
		if g%views != 0 {
			return fmt.Errorf("--gpus %d: not a multiple of %d views", g, views)
		}
	}
	common := []string{"bench", "--json", "--dims", *dims, "--hidden", *hidden, "--classes", strconv.Itoa(classes),
		"--updates", strconv.Itoa(*updates), "--warmup", strconv.Itoa(*warmup)}

	// Measure: local and every world size, each with the strong and the weak batch.
	var runs []run
	start := time.Now()
	for _, mode := range []string{"strong", "weak"} {
		for _, np := range append([]int{0}, nps...) {
			R := max(1, np/views)
			batch := *strong
			if mode == "weak" {
				batch = *weak * R
			}
			r := run{Mode: mode, Ranks: np}
			for i := 0; i < *repeat; i++ {
				b, err := measure(*mct, np, append(common, "--batch", strconv.Itoa(batch)))
				if err != nil {
					return err
				}
				if i == 0 || b.SecondsPerUpdate < r.SecondsPerUpdate {
					r.bench = b
				}
			}
			runs = append(runs, r)
			fmt.Fprintf(os.Stderr, "%s %s: %.4f s/update, comm %.4f\n", mode, r.layout(), r.SecondsPerUpdate, r.CommPerUpdate)
		}
	}
	elapsed := time.Since(start)

	// The model's byte accounting, checked against the measured pool all-reduce.
	var bnPerLayer int
	for _, r := range runs {
		if r.Replicas > 1 {
			if bnPerLayer, err = bnReducesPerLayer(r.BytesPerUpdate["allreduce"], r.ParamsPerView, len(hw), hw[0], lossFloat64s); err != nil {
				return err
			}
			break
		}
	}
	if bnPerLayer == 0 {
		return fmt.Errorf("--np %s: no layout with 2 or more replicas, so the BatchNorm all-reduces cannot be counted; add --np %d", *npList, 2*views)
	}
	for _, r := range runs {
		// Views of one process pass their logits through their backends; the all-gather
		// then carries only h.
		rows, logits := r.Batch/r.Replicas, r.LogitsExchange != "backends"
		if got, want := r.BytesPerUpdate["allgather"], allgatherBytes(r.Views, rows, classes, logits); got != want {
			return fmt.Errorf("%s: all-gather moved %d bytes, the model says %d (%d views, %d rows, %d classes, logits %v); update allgatherBytes to match train/step.go",
				r.layout(), got, want, r.Views, rows, classes, logits)
		}
	}

	if err := drawPlot(*png, runs); err != nil {
		return err
	}

	host, _ := os.Hostname()
	fmt.Fprintf(out, "Measured %s on %s (%d cores, Go %s), %s, in %.0f s.\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		host, runtime.NumCPU(), runtime.Version(), loadavg(), elapsed.Seconds())
	fmt.Fprintf(out, "Probe: CPU backend, views %s wide, %d classes, hidden %s, %d timed updates after %d, best of %d; strong: global batch %d; weak: %d per replica.\n\n",
		*dims, classes, *hidden, *updates, *warmup, *repeat, *strong, *weak)
	fmt.Fprintln(out, "| scaling | layout | W | global batch | s/update | comm s/update | comm share | all-gather B | all-reduce B |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range runs {
		W := strconv.Itoa(r.Ranks)
		if r.Ranks == 0 {
			W = "1 process"
		}
		fmt.Fprintf(out, "| %s | %s | %s | %d | %.4f | %.4f | %.0f %% | %d | %d |\n", r.Mode, r.layout(), W, r.Batch,
			r.SecondsPerUpdate, r.CommPerUpdate, 100*r.CommShare(), r.BytesPerUpdate["allgather"], r.BytesPerUpdate["allreduce"])
	}
	fmt.Fprintf(out, "\nPlot: %s. BatchNorm all-reduces decoded from the bytes: %d per layer per update.\n\n", *png, bnPerLayer)

	// Model: the reference workload at scale.
	w := Workload{Views: views, Classes: *refClasses, Params: *refParams, LossFloat64s: lossFloat64s}
	for _, h := range rh {
		for k := 0; k < bnPerLayer; k++ {
			w.BNFloats = append(w.BNFloats, 2*h+1)
		}
	}
	net := Network{Name: "InfiniBand", Bandwidth: *bw, Latency: *lat}
	computes := []Compute{
		{Name: fmt.Sprintf("measured %.1f ms (launch-bound)", *gpuMS), Fixed: (*gpuMS - *floorMS) / 1e3, PerBatch: *floorMS / 1e3, RefBatch: *refBatch},
		{Name: fmt.Sprintf("device floor %.2f ms", *floorMS), PerBatch: *floorMS / 1e3, RefBatch: *refBatch},
	}
	fmt.Fprintf(out, "Model: %d views × %d classes, %d parameters per view, %d BatchNorm all-reduces of %v floats, ring collectives at %.0f GB/s and %.0f µs per step.\n\n",
		views, *refClasses, *refParams, len(w.BNFloats), rh, *bw/1e9, *lat*1e6)
	fmt.Fprintln(out, "| compute | scaling | GPUs | replicas | rows/replica | global batch | compute ms | all-gather ms | all-reduce ms | total ms | comm share | examples/s |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range computes {
		for _, mode := range []string{"strong", "weak"} {
			for _, g := range gs {
				rows := *refBatch
				if mode == "strong" {
					rows = *refBatch / (g / views)
				}
				p, err := Predict(w, net, c, g, rows)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "| %s | %s | %d | %d | %d | %d | %.3f | %.3f | %.3f | %.3f | %.0f %% | %.0f |\n", c.Name, mode, g, p.Replicas, p.Rows,
					p.GlobalBatch, 1e3*p.Compute, 1e3*p.Gather, 1e3*p.Reduce, 1e3*p.Total(), 100*p.CommShare(), float64(p.GlobalBatch)/p.Total())
			}
		}
	}
	return nil
}

// classes and lossFloat64s are what `mct bench` uses: its default class count, and the
// pooled losses of train/step.go (L_before, L_after and the row weight).
const (
	classes      = 10
	lossFloat64s = 3
)

// measure runs `mct bench --json` once: in this process's place for np = 0, else under
// mpirun with np ranks (oversubscribed when np exceeds the cores), niced.
func measure(mct string, np int, args []string) (bench, error) {
	argv := append([]string{"-n", "10", mct}, args...)
	if np > 0 {
		argv = append([]string{"-n", "10", "mpirun", "--oversubscribe", "-np", strconv.Itoa(np), mct}, args...)
	}
	cmd := exec.Command("nice", argv...)
	cmd.Env = os.Environ()
	if os.Geteuid() == 0 {
		cmd.Env = append(cmd.Env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return bench{}, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, lastLine(stderr.String()))
	}
	var b bench
	i := bytes.IndexByte(stdout.Bytes(), '{')
	if i < 0 {
		return bench{}, fmt.Errorf("%s: no JSON on stdout: %s", strings.Join(cmd.Args, " "), lastLine(stdout.String()))
	}
	if err := json.NewDecoder(bytes.NewReader(stdout.Bytes()[i:])).Decode(&b); err != nil {
		return bench{}, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	return b, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// loadavg names the machine's load, which inflates every time measured here.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load unknown"
	}
	return "load average " + strings.Join(f[:3], " ")
}
