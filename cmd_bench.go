package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strings"

	"mct/internal/list"
	"mct/ranks"
	"mct/train"
)

// gemmRoofline measures the GPU's bf16 GEMM rate in FLOP/s; set by the cuda build.
var gemmRoofline func() (float64, error)

func cmdBench(args []string) error {
	cfg := train.Defaults()
	cfg.Hidden = []int{1024, 1024, 1024}
	fs := newFlags("bench", `usage: mct bench [flags]

Times the MCT update (train/step.go: every view's teacher pass, student step, feedback,
teacher step, and the collectives) on random data. Under mpirun it measures the MPI
transport, one rank per view and replica; the communication time and bytes are rank 0's.`)
	dims := fs.String("dims", "784,324", "view widths (one view each) of the random data")
	classes := fs.Int("classes", 10, "classes")
	rows := fs.Int("rows", 8192, "rows of random data batches are drawn from")
	warmup := fs.Int("warmup", 2, "untimed updates first (on a GPU at least 2: an update's segments run one by one the first time and are captured as CUDA graphs the second)")
	updates := fs.Int("updates", 10, "timed updates")
	asJSON := fs.Bool("json", false, "print JSON")
	profile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole bench (set-up included) to `FILE` (under mpirun: FILE.<local rank>); read it with go tool pprof -symbolize=none -top FILE (re-symbolizing from the binary misplaces the OpenBLAS samples)")
	roof := fs.Bool("roofline", false, "also measure the GPU's bf16 GEMM rate and report the update's fraction of it (cuda build)")
	segments := fs.Bool("segment-times", false, "also time each replayed segment of the update on the GPU (teacher forward, steps 2–4, teacher step): how busy the device is (cuda build, CUDA graphs on)")
	opTimes := fs.Bool("op-times", false, "time every operation of the update's segments on the GPU, one by one instead of as CUDA graphs: which kernels the device time goes to (cuda build; slows the update, so its time is not the untimed one)")
	fs.Func("hidden", "probe hidden widths (default 1024,1024,1024, the reference FCNN)", func(s string) error {
		h, err := list.PositiveInts(s)
		cfg.Hidden = h
		return err
	})
	fs.StringVar(&cfg.Arch, "arch", cfg.Arch, "probe: fcnn, mlp or linear")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "unlabeled examples per update (global)")
	fs.IntVar(&cfg.LabeledBatch, "labeled-batch", cfg.LabeledBatch, "labeled examples per update (0: batch)")
	fs.StringVar(&cfg.Device, "device", cfg.Device, "auto (the GPU in a make cuda build when one opens, else the CPU), cpu or cuda")
	fs.StringVar(&cfg.Precision, "precision", cfg.Precision, "GEMM precision on a GPU: bf16, tf32 or fp32")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	d, err := list.PositiveInts(*dims)
	if err != nil {
		return fmt.Errorf("--dims: %w", err)
	}
	if len(d) < 2 {
		return fmt.Errorf("--dims %s: one view; an MCT update needs at least 2 (e.g. --dims %s,324)", *dims, *dims)
	}
	if err := benchFlags(&cfg, *updates, *warmup, *classes); err != nil {
		return train.Refuse("bench", err)
	}
	if *profile != "" {
		stop, err := startCPUProfile(*profile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *segments && *opTimes {
		return fmt.Errorf("--segment-times and --op-times: choose one (timing every operation replaces the segments' graphs)")
	}
	res, err := train.Bench(cfg, train.RandomViews(d, *classes, *rows, cfg.Seed),
		train.BenchOptions{Warmup: *warmup, Updates: *updates, SegmentTimes: *segments, OpTimes: *opTimes})
	if err != nil || res == nil {
		return err // res is nil on ranks other than 0
	}
	if *roof {
		if gemmRoofline == nil {
			return fmt.Errorf("--roofline: this mct was built without CUDA (make cuda)")
		}
		if res.GEMMRate, err = gemmRoofline(); err != nil {
			return err
		}
		res.RooflineFraction = res.FLOPsPerUpdate / res.SecondsPerUpdate / res.GEMMRate
	}
	if res.Note != "" {
		fmt.Fprintln(os.Stderr, res.Note)
	}
	if *segments && len(res.SegmentsPerUpdate) == 0 {
		fmt.Fprintf(os.Stderr, "--segment-times: no segment was timed: %s times none, or CUDA graphs were off (only replayed segments are timed)\n", res.Backend)
	}
	if *opTimes && len(res.OpsPerUpdate) == 0 {
		fmt.Fprintf(os.Stderr, "--op-times: no operation was timed: %s times none, or CUDA graphs were off (only recorded segments are timed)\n", res.Backend)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Println(string(b))
		return nil
	}
	var bytes []string
	for k, v := range res.BytesPerUpdate {
		bytes = append(bytes, fmt.Sprintf("%s %d B", k, v))
	}
	slices.Sort(bytes) // map order is random
	fmt.Fprintf(os.Stdout, "%d views × %d replicas (%s, %s, logits via %s), batch %d, %d params/view: %.4f s/update (%.2f updates/s, %.0f examples/s/view), comm %.4f s/update (%s), %.1f GFLOP/s\n",
		res.Views, res.Replicas, res.Transport, res.Backend, res.LogitsExchange, res.Batch, res.ParamsPerView, res.SecondsPerUpdate,
		res.UpdatesPerSecond, res.UpdatesPerSecond*float64(res.Batch), res.CommPerUpdate, strings.Join(bytes, ", "),
		res.FLOPsPerUpdate/res.SecondsPerUpdate/1e9)
	if res.LaunchesPerUpdate > 0 {
		graphs := "off (MCT_CUDA_GRAPHS=0, replicas, or capture failed)"
		if res.CUDAGraphs {
			graphs = "on: each update replays its 3 segments"
		}
		fmt.Printf("%.0f stream operations (kernels, GEMMs, memsets, copies, graph launches) per update on rank 0; CUDA graphs %s\n",
			res.LaunchesPerUpdate, graphs)
	}
	if res.HostWaitPerUpdate > 0 {
		fmt.Printf("rank 0 waited %.3f ms per update for its device (%.0f%% of the update)\n",
			1e3*res.HostWaitPerUpdate, 100*res.HostWaitPerUpdate/res.SecondsPerUpdate)
	}
	if len(res.SegmentsPerUpdate) > 0 {
		var parts []string
		var sum float64
		for _, name := range slices.Sorted(maps.Keys(res.SegmentsPerUpdate)) {
			sec := res.SegmentsPerUpdate[name]
			parts = append(parts, fmt.Sprintf("%s %.3f ms", name, 1e3*sec))
			sum += sec
		}
		fmt.Printf("device time per update on rank 0: %s; %.3f ms in all, %.0f%% of the update (A teacher forward, B steps 2-4, C teacher step)\n",
			strings.Join(parts, ", "), 1e3*sum, 100*sum/res.SecondsPerUpdate)
	}
	if len(res.OpsPerUpdate) > 0 {
		printOpTimes(res)
	}
	if *roof {
		fmt.Printf("bf16 GEMM rate %.1f TFLOP/s: the update runs at %.1f%% of it\n", res.GEMMRate/1e12, 100*res.RooflineFraction)
	}
	return nil
}

// benchFlags checks bench's flags: those it shares with train by train's rules.
func benchFlags(cfg *train.Config, updates, warmup, classes int) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	switch {
	case updates < 1:
		return fmt.Errorf("--updates %d: expected at least 1", updates)
	case warmup < 0:
		return fmt.Errorf("--warmup %d: expected at least 0", warmup)
	case classes < 2:
		return fmt.Errorf("--classes %d: expected at least 2", classes)
	}
	return nil
}

// printOpTimes prints rank 0's device time per update by operation, the largest first.
func printOpTimes(res *train.BenchResult) {
	var sum float64
	for _, sec := range res.OpsPerUpdate {
		sum += sec
	}
	fmt.Printf("device time per update by operation on rank 0: %.3f ms in all (operations one by one, not as graphs; %d of %d segments late, their times may include launch gaps)\n",
		1e3*sum, res.OpSegmentsLate, res.OpSegments)
	names := slices.SortedFunc(maps.Keys(res.OpsPerUpdate), func(a, b string) int {
		return cmp.Compare(res.OpsPerUpdate[b], res.OpsPerUpdate[a])
	})
	for _, name := range names {
		sec := res.OpsPerUpdate[name]
		fmt.Printf("  %-40s %8.1f µs %5.1f%%\n", name, 1e6*sec, 100*sec/sum)
	}
}

// startCPUProfile starts pprof's CPU profile into path (suffixed with the local rank
// under mpirun, so ranks on one node do not overwrite each other's).
func startCPUProfile(path string) (stop func(), err error) {
	if ranks.Launched() {
		path = fmt.Sprintf("%s.%d", path, ranks.LocalRank())
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
