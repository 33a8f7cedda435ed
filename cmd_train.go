package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"mct/data/pretrained"
	"mct/internal/list"
	"mct/train"
)

// trainFlags binds the train flags to cfg; shared by train and sweep's argument check.
func trainFlags(fs *flag.FlagSet, cfg *train.Config) {
	fs.StringVar(&cfg.Algo, "algo", cfg.Algo, "supervised, cotrain, mct, or mpl (Meta Pseudo Labels: two probes on one view, each the other's teacher)")
	fs.StringVar(&cfg.Data, "data", cfg.Data, "fashion-mnist, mnist or a dataset directory (mct data import)")
	fs.Func("views", "comma-separated views, e.g. pixels,hog,gabor (default "+strings.Join(cfg.Views, ",")+")", func(s string) error {
		cfg.Views = list.Strings(s)
		return nil
	})
	fs.Float64Var(&cfg.Labeled, "labeled", cfg.Labeled, "fraction of the train examples with a known label that keep it (the rest of them: --val, then unlabeled)")
	fs.BoolVar(&cfg.Balanced, "balanced", cfg.Balanced, "equal labeled count per class (default: stratified)")
	fs.IntVar(&cfg.Val, "val", cfg.Val, "validation examples held out of train (model selection)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the split, initialisation, sampling and pseudo-labels")
	fs.StringVar(&cfg.Arch, "arch", cfg.Arch, "probe: fcnn (the reference's, exact), mlp (clean variant) or linear")
	fs.Func("hidden", "hidden widths, comma-separated (default "+list.Ints(cfg.Hidden)+")", func(s string) error {
		h, err := list.PositiveInts(s)
		cfg.Hidden = h
		return err
	})
	f32 := func(p *float32, name, usage string) {
		fs.Func(name, fmt.Sprintf("%s (default %g)", usage, *p), func(s string) error {
			v, err := strconv.ParseFloat(s, 32)
			*p = float32(v)
			return err
		})
	}
	f32(&cfg.Dropout, "dropout", "dropout probability after each hidden block")
	f32(&cfg.Temperature, "temperature", "the probe's logit temperature")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "unlabeled examples per update (global over replicas)")
	fs.IntVar(&cfg.LabeledBatch, "labeled-batch", cfg.LabeledBatch, "labeled examples per update (0: min(batch, labeled))")
	f32(&cfg.LR, "lr", "Adam learning rate of supervised training and warmup")
	f32(&cfg.MCTLR, "mct-lr", "Adam learning rate of the MCT phase (0: lr/8, as the reference)")
	f32(&cfg.Clip, "clip", "gradient-norm clip of the MCT steps (0: none)")
	fs.IntVar(&cfg.WarmupEpochs, "warmup-epochs", cfg.WarmupEpochs, "most supervised epochs (early stopping ends sooner)")
	fs.IntVar(&cfg.Patience, "patience", cfg.Patience, "epochs without validation gain before stopping")
	fs.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "MCT epochs (passes over the unlabeled set)")
	f32(&cfg.PseudoT, "pseudo-temperature", "temperature of the pseudo-label distribution")
	fs.BoolVar(&cfg.Hard, "hard", cfg.Hard, "argmax pseudo-labels instead of sampling them")
	fs.BoolVar(&cfg.ExactH, "exact-h", cfg.ExactH, "feedback h from the gradient dot product instead of the loss difference")
	fs.BoolVar(&cfg.NoFeedback, "no-feedback", cfg.NoFeedback, "ablation: teachers get no meta-feedback (h·δ), only their supervised gradient")
	fs.IntVar(&cfg.CotrainRounds, "cotrain-rounds", cfg.CotrainRounds, "co-training rounds")
	fs.IntVar(&cfg.CotrainK, "cotrain-k", cfg.CotrainK, "examples per class each view labels per co-training round")
	fs.StringVar(&cfg.Out, "out", cfg.Out, "run directory (default runs/<algo>-<views>-<labeled>-s<seed>)")
	fs.StringVar(&cfg.CacheDir, "cache", cfg.CacheDir, cacheHelp)
	fs.StringVar(&cfg.Device, "device", cfg.Device, "compute device: auto (in a make cuda build, the GPU placed for this rank, or the CPU if it does not open; a make cuda build needs the NVIDIA driver to start), cpu, or cuda (an error if the GPU does not open)")
	fs.StringVar(&cfg.Precision, "precision", cfg.Precision, "GEMM precision on a GPU: bf16, tf32 or fp32 (exact)")
	fs.BoolVar(&cfg.Quiet, "quiet", cfg.Quiet, "no progress output on stderr (the results table still goes to stdout)")
	fs.BoolVar(&cfg.Resume, "resume", cfg.Resume, "continue from the run directory's last committed checkpoint")
	fs.IntVar(&cfg.CheckpointEvery, "checkpoint-every", cfg.CheckpointEvery, "updates between checkpoints (0: after warmup and at the end of each MCT epoch only)")
	fs.IntVar(&cfg.Keep, "keep", cfg.Keep, "committed checkpoints kept (0: all)")
}

func cmdTrain(args []string) error {
	cfg := train.Defaults()
	fs := newFlags("train", fmt.Sprintf(`usage: mct train [flags]

Trains one probe per view (two on the one view under --algo mpl). With no flags: Meta
Co-Training on Fashion-MNIST with 1%% labels and the %s views, about 20 s on two cores
once the views are built (the first run builds them, under a minute). Under mpirun/srun
each rank trains one probe (world size = probes × replicas). Writes config.json,
metrics.jsonl, summary.json, curves.png and model-<probe>.safetensors to the run
directory, and under ckpt/ the checkpoints --resume needs.`, strings.Join(cfg.Views, "+")))
	trainFlags(fs, &cfg)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.CacheDir != "" {
		pretrained.SetCacheDir(cfg.CacheDir) // where the npm package and partial embeddings go
	}
	if cfg.Out == "" {
		cfg.Out = fmt.Sprintf("runs/%s-%s-%g-s%d", cfg.Algo, strings.Join(cfg.Views, "+"), cfg.Labeled, cfg.Seed)
	}
	// SIGTERM and SIGUSR1 (SLURM's warning before the time limit) stop the run at the next
	// update with a checkpoint; Ctrl-C keeps its default and ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGUSR1)
	defer stop()
	var w io.Writer = os.Stderr
	if cfg.Quiet {
		w = io.Discard
	}
	sum, err := train.Run(ctx, cfg, w)
	if errors.Is(err, train.ErrStopped) {
		return nil // checkpointed; the line saying how to resume is printed
	}
	if err == nil && sum != nil { // rank 0: the results on stdout, progress on stderr
		fmt.Print(sum.Table())
	}
	return err
}
