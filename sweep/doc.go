// Package sweep runs grids of mct trainings — label fractions, view sets,
// seeds, learning rates — one combination per SLURM array task, and gathers
// their results into tables and a plot.
//
// # Grid files
//
// A grid is a JSON file. Its "fixed" flags go to every run; its "vary" flags
// are crossed (cartesian product), the first one as the outermost loop and the
// last as the innermost, so the order of the file is the order of the array:
//
//	{
//	  "comment": "MCT against its baselines at three label fractions",
//	  "ranks": 2,
//	  "launcher": "mpirun",
//	  "launcher_args": [],
//	  "fixed": {"data": "data/fmnist", "epochs": 50},
//	  "vary": {
//	    "algo": ["supervised", "cotrain", "mct"],
//	    "views": [["hog", "gabor"], {"name": "nets", "value": ["mobilenet_v2", "inception_v3"]}],
//	    "labeled": [0.01, 0.05, 0.1],
//	    "seed": [1, 2, 3]
//	  }
//	}
//
// Its data/fmnist, beside the grid file, is a dataset directory with those four views:
// `mct data build --views hog,gabor,mobilenet_v2,inception_v3 --out data/fmnist`.
// (TestDocGrids expands both examples of this comment and checks their views.)
//
// Values are strings, numbers (kept as written: 0.010 stays 0.010), booleans,
// or lists of them, which become comma-separated flag values (a view set).
// Each combination becomes `--flag=value` arguments and a name built from the
// varied values, e.g. algo-mct_views-nets_labeled-0.01_seed-3; a
// value written as {"name": n, "value": v} is called n in names. The name,
// not the index, identifies a run, so adding values to an axis keeps the old
// runs (adding an axis renames them all).
//
// Settings that only make sense together go in "cases", a list of objects of
// flags, each crossed with the vary product as a loop outside it, e.g. Meta
// Pseudo Labels on one view beside MCT on two, each with every seed:
// "cases": [{"algo": "mpl", "views": ["hog"]}, {"algo": "mct", "views": ["hog", "gabor"]}]
// gives algo-mpl_views-hog_seed-1, …, algo-mct_views-hog+gabor_seed-1, …. A
// flag is set in one place: fixed, vary or the cases.
//
// "ranks" (default 1) is the number of processes per run (views ×
// replicas); above one, the trainer is started by "launcher" (mpirun, the
// default, or srun) with "launcher_args" after it.
//
// The same grid in TOML (a file ending in .toml; the subset a grid needs:
// no dates, multi-line strings, dotted keys or arrays of tables):
//
//	ranks = 2
//	[fixed]
//	data = "data/fmnist"
//	epochs = 50
//	[vary]
//	algo = ["supervised", "cotrain", "mct"]
//	views = [["hog", "gabor"], {name = "nets", value = ["mobilenet_v2", "inception_v3"]}]
//	labeled = [0.01, 0.05, 0.1]
//	seed = [1, 2, 3]
//
// A grid's paths are relative to its directory, where train runs, and may
// not leave it: an absolute value or one that climbs out with ".." is refused
// with the field named. The flags out and resume belong to the sweep.
//
// # Running
//
// Expand lists the combinations. Run(grid, i, self) runs combination i as
//
//	[mpirun -np RANKS] self train FLAGS --out=GRIDDIR/runs/NAME [--resume]
//
// idempotently: a combination whose summary.json exists is not run again
// while the grid gives it the flags it ran with (runs/.NAME.flags; after a
// change the trainer is resumed and refuses a run of another configuration),
// one whose run directory has content is resumed, and a lock file keeps two
// processes off one combination. Array tasks therefore need no shared table
// to claim work: the array index is the combination, and resubmitting a whole
// array only runs what has not finished.
//
// Pre-emption: Run passes SIGUSR1 and SIGTERM on to the trainer as SIGUSR1;
// the trainer checkpoints at its next step boundary (or, while it builds the
// views, stops before training) and exits 0 without writing summary.json, and
// Run returns ErrPreempted, for which `mct sweep run` prints one line and
// exits with ExitPreempted (75). jobs/slurm/sweep.sbatch
// requeues the task when that follows SLURM's warning signal.
//
// # Results
//
// The trainer writes summary.json (see Summary) when a run finishes.
// Collect(grid or directory) reads all of them and writes results.md and
// results.csv (one row per configuration: mean ± sample standard deviation
// over seeds of the ensemble's and each view's test accuracy), runs.csv (one
// row per run) and accuracy.png (ensemble accuracy against labeled fraction,
// a line per algorithm and configuration, error bars over seeds). When the
// summaries report them, a second table under the accuracies gives, per
// configuration and pair of views, the % of test examples both views get
// wrong, the % if their errors were independent, the % both get wrong with
// the same class, and the first after the warmup (the CSV files get these
// as columns); summaries from before the trainer measured shared errors
// leave that table out or its cells "-". Report(run directories) returns
// the same tables for `mct report`. Runs that differ only by seed form one
// row; any other setting that differs between runs —
// in their summaries' config, or varied in the grid — becomes a column of
// its own, so a learning-rate sweep shows an lr column rather than averaging
// over learning rates.
package sweep
