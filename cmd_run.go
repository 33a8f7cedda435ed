package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"mct/blas"
	"mct/ckpt"
	"mct/data"
	"mct/probe"
	"mct/ranks"
	"mct/sweep"
	"mct/train"
)

// Commands that work on finished runs, the node, and sweeps.

func cmdEval(args []string) error {
	fs := newFlags("eval", `usage: mct eval DIR [flags]     (or --run DIR)

Runs a finished run's probes on a test split and prints each view's and the ensemble's
accuracy, and for every pair of views how often both are wrong (against the rate if
their errors were independent) and wrong with the same class: co-training and MCT can
correct an example only where some view is right about it.`)
	run := fs.String("run", "", "a finished run directory")
	spec := fs.String("data", "", "dataset to evaluate on (default: the run's own; another one's features are standardised as the run's were)")
	cache := fs.String("cache", "", cacheHelp)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseRunFlags(fs, args, run); err != nil {
		return err
	}
	p, err := train.Predict(*run, *spec, *cache)
	if err != nil {
		return err
	}
	acc := p.Accuracy()
	if *asJSON {
		b, _ := json.MarshalIndent(acc, "", "  ")
		fmt.Println(string(b))
		return nil
	}
	fmt.Printf("%-12s %10s\n", "view", "test acc")
	for _, v := range p.Views {
		fmt.Printf("%-12s %10.4f\n", v, acc.PerView[v])
	}
	fmt.Printf("%-12s %10.4f\n", "ensemble", acc.Ensemble)
	if shared := acc.SharedErrors; len(shared) > 0 {
		fmt.Printf("\n%-20s  %10s  %14s  %16s\n", "views", "both wrong", "if independent", "same wrong class")
		for _, s := range shared {
			fmt.Printf("%-20s  %10.4f  %14.4f  %16.4f\n", s.A+"+"+s.B, s.BothWrong, s.Independent, s.SameWrong)
		}
	}
	return nil
}

func cmdPredict(args []string) error {
	fs := newFlags("predict", `usage: mct predict DIR --out FILE.npy [flags]     (or --run DIR)

Writes the ensemble's class (the argmax of the views' summed logits) for every example,
as int64 NumPy, in row order: of the run's test split, of another dataset directory's
(--data), or of new examples nobody labelled (--features, one file per view of the run,
raw features as mct data import takes them; row i of every file the same example).

  mct predict runs/mine --features clip=clip-new.npy --features dino=dino-new.npy --out pred.npy`)
	run := fs.String("run", "", "a finished run directory")
	spec := fs.String("data", "", "dataset whose test split to predict (default: the run's own; another one's features are standardised as the run's were)")
	var features []string // VIEW=FILE.npy, split once the run's views are known
	fs.Func("features", "VIEW=FILE.npy: new examples' raw features of one of the run's views (repeat per view; instead of --data)", func(s string) error {
		if view, file, ok := strings.Cut(s, "="); !ok || view == "" || file == "" {
			return errors.New("expected VIEW=FILE.npy")
		}
		features = append(features, s)
		return nil
	})
	out := fs.String("out", "", "NPY file of the ensemble's class predictions (int64, one per example)")
	probs := fs.String("probs", "", "also an NPY file of the ensemble's class probabilities (float32, examples × classes: the softmax of the views' summed logits)")
	cache := fs.String("cache", "", cacheHelp)
	if err := parseRunFlags(fs, args, run); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out FILE.npy is required")
	}
	if filepath.Clean(*probs) == filepath.Clean(*out) {
		return fmt.Errorf("--probs %s: the same file as --out", *probs)
	}
	var p *train.Predictions
	var err error
	if len(features) > 0 {
		if *spec != "" {
			return fmt.Errorf("--data and --features: give one (a dataset's test split, or new examples' features)")
		}
		var views []string // a run that cannot be read is PredictFeatures's error
		if s, err := train.ReadSummary(*run); err == nil {
			views = s.Config.Views
		}
		files, ferr := featureFiles(views, features)
		if ferr != nil {
			return ferr
		}
		p, err = train.PredictFeatures(*run, files)
	} else {
		p, err = train.Predict(*run, *spec, *cache)
	}
	if err != nil {
		return err
	}
	pred := p.Ensemble()
	if err := data.WriteNPY(*out, data.NewInt64([]int{len(pred)}, pred)); err != nil {
		return err
	}
	wrote := fmt.Sprintf("the ensemble's classes of %d examples written to %s", len(pred), *out)
	if *probs != "" {
		if err := data.WriteNPY(*probs, data.NewFloat32([]int{len(pred), p.Classes}, p.Probabilities())); err != nil {
			return err
		}
		wrote += ", their probabilities to " + *probs
	}
	if p.Labels != nil {
		wrote += fmt.Sprintf(" (ensemble test accuracy %.4f)", p.Accuracy().Ensemble)
	}
	fmt.Fprintln(os.Stderr, "mct predict:", wrote)
	return nil
}

func cmdExport(args []string) error {
	fs := newFlags("export", `usage: mct export DIR --view NAME --out FILE.safetensors     (or --run DIR)

Writes one view's probe as safetensors: weights and BatchNorm statistics under PyTorch
state_dict names, the architecture in the metadata, and the mean and std removed from the
view's raw features. python/mct_probe.py loads it as a PyTorch module taking raw features.`)
	run := fs.String("run", "", "a finished run directory")
	view := fs.String("view", "", "the view whose probe to export")
	format := fs.String("format", "safetensors", "safetensors (the only format)")
	out := fs.String("out", "", "output file")
	if err := parseRunFlags(fs, args, run); err != nil {
		return err
	}
	if *format != "safetensors" {
		return fmt.Errorf("--format %q: only safetensors is supported", *format)
	}
	if *view == "" {
		return fmt.Errorf("--view NAME is required: the view whose probe to export")
	}
	if *out == "" {
		return fmt.Errorf("--out FILE.safetensors is required")
	}
	s, err := train.ReadSummary(*run)
	if err != nil {
		return err
	}
	if !slices.Contains(s.Views, *view) {
		return fmt.Errorf("--view %s: not a probe of %s (its probes: %s)", *view, *run, strings.Join(s.Views, ", "))
	}
	ts, meta, err := ckpt.ReadSafetensors(train.ModelPath(*run, *view))
	if err != nil {
		return err
	}
	if err := ckpt.WriteSafetensors(*out, ts, meta); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mct export: wrote %s, the probe of view %s (python/mct_probe.py loads it)\n", *out, *view)
	return nil
}

// featureFiles splits predict's --features VIEW=FILE.npy words by the run's views: a
// view spec may hold '=' itself (--features hog:cell=7=hog.npy), so the view is the
// longest of the run's views the word starts with, followed by '='; otherwise the text
// before the first '=' (which PredictFeatures refuses, naming the run's views).
func featureFiles(views, words []string) (map[string]string, error) {
	files := map[string]string{}
	for _, w := range words {
		view, file, _ := strings.Cut(w, "=")
		for _, v := range views {
			if len(v) > len(view) && strings.HasPrefix(w, v+"=") {
				view, file = v, w[len(v)+1:]
			}
		}
		if _, dup := files[view]; dup {
			return nil, fmt.Errorf("--features: view %s given twice", view)
		}
		files[view] = file
	}
	return files, nil
}

// parseRunFlags parses the flags of a command on one finished run, whose directory is the
// one word among them (mct eval runs/x --json, mct eval --json runs/x) or --run DIR.
func parseRunFlags(fs *flag.FlagSet, args []string, run *string) error {
	var dir string
	err := parseFlags(fs, args)
	if errors.Is(err, errExtraWord) {
		// The flag package stops at the first word: take it, and parse the flags after it.
		dir = fs.Arg(0)
		err = parseFlags(fs, fs.Args()[1:])
	}
	if err != nil {
		return err
	}
	switch {
	case dir != "" && *run != "" && dir != *run:
		return fmt.Errorf("two run directories, %s and --run %s: give one", dir, *run)
	case dir != "":
		*run = dir
	case *run == "":
		return fmt.Errorf("no run directory: mct %s DIR", fs.Name())
	}
	return nil
}

func cmdReport(args []string) error {
	const usage = "usage: mct report RUN_DIR... — Markdown table: algo, views, labels, seeds → mean ± std accuracy"
	if len(args) == 0 {
		return fmt.Errorf("expected run directories (%s)", usage)
	}
	if isHelp(args[0]) {
		fmt.Println(usage)
		return flag.ErrHelp
	}
	md, skipped, err := sweep.Report(args)
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		fmt.Fprintf(os.Stderr, "mct report: skipped %d without summary.json (unfinished runs, or not runs): %s\n", len(skipped), strings.Join(skipped, " "))
	}
	fmt.Print(md)
	return nil
}

func cmdProbe(args []string) error {
	fs := newFlags("probe", `usage: mct probe [--json]

Shows the CPU and its BLAS kernel, the GPUs (NVML), the MPI library and whether it is
CUDA-aware, and the GPU this rank would use. Under mpirun every rank reports its own.`)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rep, err := probe.Inventory()
	if err != nil {
		return err
	}
	rep.CPU = probe.CPU{Cores: runtime.NumCPU(), BLAS: blas.Impl()}
	if a := blas.Advice(); a != "" {
		rep.Notes = append(rep.Notes, a)
	}
	rep.MPI.Library = ranks.LibraryVersion()
	rep.MPI.CUDAAware = "unknown: the MPI library answers once initialised (mpirun -np 1 mct probe)"
	if ranks.Launched() {
		world, err := ranks.World()
		if err != nil {
			return err
		}
		if aware, why := ranks.CUDAAware(); aware {
			rep.MPI.CUDAAware = "yes"
		} else {
			rep.MPI.CUDAAware = "no (" + why + "): the MCT logits are all-gathered through host memory"
		}
		defer world.Close()
	}
	plan, perr := probe.Plan(ranks.LocalRank(), ranks.LocalSize(), rep)
	if *asJSON {
		b, _ := json.MarshalIndent(struct {
			probe.Report
			Placement *probe.Placement `json:"placement,omitempty"`
		}{rep, placementOrNil(plan, perr)}, "", "  ")
		fmt.Println(string(b))
		return nil
	}
	fmt.Print(rep.Text())
	if perr != nil {
		fmt.Printf("placement: CPU (%v)\n", perr)
	} else {
		fmt.Printf("placement: local rank %d of %d → CUDA device %d (%s), shared by %d rank(s)\n",
			plan.LocalRank, plan.LocalSize, plan.Device, plan.GPU.Name, plan.Sharing)
	}
	return nil
}

func placementOrNil(p probe.Placement, err error) *probe.Placement {
	if err != nil {
		return nil
	}
	return &p
}

// checkCombos parses every combination's flags as mct train would and validates the
// configuration, so that a grid with a combination that cannot run (a misspelt flag,
// --algo mpl with two views, more views than the grid's ranks divide into) fails at
// `sweep list`, before an array is submitted, not in its jobs. It prints one line per
// such combination and returns an error saying how many.
func checkCombos(grid string, procs int, combos []sweep.Combo) error {
	bad := 0
	for i, c := range combos {
		cfg := train.Defaults()
		fs := flag.NewFlagSet("train", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		trainFlags(fs, &cfg)
		err := fs.Parse(c.Args())
		if err == nil {
			err = cfg.Validate()
		}
		// One "ranks" for every combination: cases with other numbers of views may not fit it.
		if n := len(cfg.Probes()); err == nil && procs > 1 && procs%n != 0 {
			err = fmt.Errorf("the grid's \"ranks\" %d is not a multiple of its %d probes (one per view; two under --algo mpl)", procs, n)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: combination %d (%s): %v\n", grid, i, c.Name, err)
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%s: %d of the %d combinations cannot run (above): change the grid", grid, bad, len(combos))
	}
	return nil
}

func cmdSweep(args []string) error {
	usage := `usage: mct sweep <list|run|collect> ...

  list GRID                 print the grid's combinations, one per line, with their index
                            (or name those whose flags mct train would refuse, and fail)
  run GRID --index I        run combination I (e.g. $SLURM_ARRAY_TASK_ID); a finished one is
                            skipped, a half-done one resumes
  collect GRID|DIR          gather every summary.json into results.md, results.csv, runs.csv,
                            accuracy.png
`
	if len(args) == 1 && isHelp(args[0]) || len(args) >= 2 && isHelp(args[1]) && args[0] != "run" { // run's flag set prints its own usage
		fmt.Print(usage)
		return flag.ErrHelp
	}
	if len(args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("expected a subcommand and a grid")
	}
	switch args[0] {
	case "list":
		g, err := sweep.Load(args[1])
		if err != nil {
			return err
		}
		combos, err := g.Combos()
		if err != nil {
			return err
		}
		if err := checkCombos(args[1], g.Ranks, combos); err != nil {
			return err
		}
		for i, c := range combos {
			fmt.Printf("%d\t%s\t%s\n", i, c.Name, strings.Join(c.Args(), " "))
		}
		return nil
	case "run":
		fs := newFlags("sweep run", `usage: mct sweep run GRID [--index I]

Runs one combination of the grid (mct sweep list GRID numbers them); inside a SLURM job
array the index is $SLURM_ARRAY_TASK_ID.`)
		index := fs.Int("index", -1, "combination index (-1: $SLURM_ARRAY_TASK_ID)")
		flags := args[2:]
		if isHelp(args[1]) { // in the grid's place
			flags = args[1:]
		}
		if err := parseFlags(fs, flags); err != nil {
			return err
		}
		if *index < 0 {
			if _, err := fmt.Sscan(os.Getenv("SLURM_ARRAY_TASK_ID"), index); err != nil {
				return fmt.Errorf("run: give --index I or run inside a SLURM job array")
			}
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		return sweep.Run(args[1], *index, self)
	case "collect":
		c, err := sweep.Collect(args[1])
		if err != nil {
			return err
		}
		fmt.Print(c.Markdown)
		for _, u := range c.Unfinished {
			fmt.Fprintf(os.Stderr, "unfinished: %s\n", u)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", strings.Join(c.Files, ", "))
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown sweep command %q", args[0])
}
