package train

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mct/ckpt"
	"mct/data"
	"mct/ranks"
)

// Summary is summary.json: what a finished run reports, machine-readable.
type Summary struct {
	Algo                     string            `json:"algo"`
	Views                    []string          `json:"views"`
	LabeledFraction          float64           `json:"labeled_fraction"`
	Labeled                  int               `json:"labeled"`
	Seed                     uint64            `json:"seed"`
	TestAccuracy             Accuracies        `json:"test_accuracy"`
	ValAccuracy              Accuracies        `json:"val_accuracy"`
	WarmupTestAccuracy       *Accuracies       `json:"warmup_test_accuracy,omitempty"`
	WarmupValAccuracy        *Accuracies       `json:"warmup_val_accuracy,omitempty"`
	Updates                  int               `json:"updates"`
	WallSeconds              float64           `json:"wall_seconds"`
	ExamplesPerSecondPerView float64           `json:"examples_per_second_per_view"`
	ParamChecksum            map[string]string `json:"param_checksum"`
	World                    int               `json:"world"`
	Replicas                 int               `json:"replicas"`
	Transport                string            `json:"transport"`
	Backend                  string            `json:"backend"`
	// LogitsExchange is how the MCT teacher logits went from view to view (MCT only): "backends",
	// "mpi-device" or "host" (train/exchange.go).
	LogitsExchange string `json:"logits_exchange,omitempty"`
	// CUDAGraphs, on a backend that records (cudaops), says whether every rank replayed
	// the MCT update's segments as CUDA graphs to the end (false: some rank turned them
	// off, with a warning, or replicas or MCT_CUDA_GRAPHS=0 kept them off); absent elsewhere.
	CUDAGraphs *bool `json:"cuda_graphs,omitempty"`
	// DataDir is --data made absolute when it is a dataset directory: mct eval and predict
	// find it from anywhere (config.data is as given, relative to where train ran).
	DataDir string `json:"data_dir,omitempty"`
	RunID   string `json:"run_id"`
	Config  Config `json:"config"`
}

// Run runs cfg to the end and returns the summary (also written to cfg.Out; under mpirun
// rank 0's, nil on the other ranks). Launched by mpirun or srun, this process is one rank
// and trains one view; otherwise every view
// trains in this process, one goroutine each, over the local transport.
func Run(ctx context.Context, cfg Config, stderr io.Writer) (*Summary, error) {
	// Reasons not to start: the flags, which every rank shares, and the environment, which
	// a rank on another node may not (mpirun passes on only the variables -x names).
	early := cfg.Validate()
	if early == nil {
		early = CheckEnv()
	}
	if early != nil && !ranks.Launched() {
		return nil, early
	}
	// A signal during a view build stops it (a pretrained network's at its next chunk of
	// images); what was built stays in the cache for the next run.
	opts := data.Options{CacheDir: cfg.CacheDir, Context: ctx}
	if ranks.Launched() {
		world, err := ranks.World()
		if err != nil {
			if early != nil {
				return nil, early
			}
			return nil, err
		}
		if err := refuse(world, "train", early); err != nil {
			return nil, err
		}
		layout, err := ranks.NewLayout(world.Size(), len(cfg.Probes()))
		if err != nil {
			return nil, refuse(world, "train", fmt.Errorf("%v (%s: %v)", err, cfg.probeUnit(), cfg.Probes()))
		}
		v := layout.View(world.Rank())
		if world.Rank() == 0 {
			opts.Progress = BuildProgress(stderr)
		}
		ds, err := data.Open(cfg.Data, []string{cfg.Views[cfg.ProbeView(v)]}, opts)
		stopped := buildStopped(ctx, err)
		if stopped {
			err = nil
		}
		// Each rank opens its own view; a bad file is told once, by the lowest rank that
		// met one (not by every rank, nor with MPI_Abort's banner), and every rank stops.
		if err := refuse(world, "train", err); err != nil {
			return nil, err
		}
		// Every rank stops if one stopped building (the others finished theirs).
		anyStopped := []int64{0}
		if stopped {
			anyStopped[0] = 1
		}
		world.AllreduceI64(anyStopped, ranks.Max)
		if anyStopped[0] == 1 {
			if world.Rank() == 0 {
				reportBuildStopped(stderr)
			}
			world.Close()
			return nil, ErrStopped
		}
		s, err := runRank(ctx, world, layout, cfg, ds, "mpi", stderr)
		if errors.As(err, new(agreedError)) {
			// Every rank returned from the same point; each would print its own line
			// ("another rank failed" where the reason was another's).
			mine := err
			if errors.Is(err, errOtherRank) {
				mine = nil
			}
			if rerr := refuse(world, "train", mine); rerr != nil {
				return nil, rerr
			}
		}
		if world.Rank() != 0 {
			s = nil // rank 0 reports
		}
		if cerr := world.Close(); err == nil {
			err = cerr
		}
		return s, err
	}
	if err := checkDevice(cfg.Device); err != nil { // before the ranks, which would each name it
		return nil, err
	}
	opts.Progress = BuildProgress(stderr)
	ds, err := data.Open(cfg.Data, cfg.Views, opts)
	if buildStopped(ctx, err) {
		reportBuildStopped(stderr)
		return nil, ErrStopped
	}
	if err != nil {
		return nil, err
	}
	sum, err := runLocal(ctx, cfg, ds, ranks.Layout{Views: len(cfg.Probes()), Replicas: 1}, stderr)
	// Ranks fail together, mostly for one reason: report the first rank's that is a reason,
	// not the note that another rank failed.
	if errs, ok := err.(interface{ Unwrap() []error }); ok && len(errs.Unwrap()) > 0 {
		all := errs.Unwrap()
		err = all[0]
		if i := slices.IndexFunc(all, func(e error) bool { return !errors.Is(e, errOtherRank) }); i >= 0 {
			err = all[i]
		}
		// A reason of the whole run (flags, split, run directory) without ranks.RunLocal's
		// "rank N: ": in one process there are no ranks to the user. What the rank said
		// around it stays ("checkpoint of step 0 (mct): …").
		if errors.As(err, new(agreedError)) {
			err = errors.Unwrap(err)
		}
	}
	return sum, err
}

// buildStopped tells whether err is data.Open's answer to a signal (ctx done).
func buildStopped(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && errors.Is(err, context.Cause(ctx))
}

func reportBuildStopped(stderr io.Writer) {
	fmt.Fprintln(stderr, "stopped by a signal while building the views, before training; what was built is kept in the cache: run the same command again to continue")
}

// runLocal runs every rank of layout in this process, one goroutine each, over the local
// transport, and returns rank 0's summary.
func runLocal(ctx context.Context, cfg Config, ds *data.Dataset, layout ranks.Layout, stderr io.Writer) (*Summary, error) {
	var sum *Summary
	err := ranks.RunLocal(layout.World(), func(c ranks.Comm) error {
		s, err := runRank(ctx, c, layout, cfg, ds, "local", stderr)
		if c.Rank() == 0 {
			sum = s
		}
		return err
	})
	return sum, err
}

// checkBatches refuses batches a training step cannot take: BatchNorm's batch statistics
// need at least 2 rows, and each of the R replicas of a view at least one.
func checkBatches(cfg Config, labeled, replicas int) error {
	need := max(2, replicas)
	lb := labeledBatch(cfg, labeled)
	switch {
	case labeled < need:
		return fmt.Errorf("--labeled %g gives %d labeled example(s), fewer than the %d a training batch needs (2, and one per replica): use a larger --labeled", cfg.Labeled, labeled, need)
	case cfg.Batch < need && (cfg.LabeledBatch == 0 || cfg.Algo == "mct" || cfg.Algo == "mpl"):
		return fmt.Errorf("--batch %d: fewer than the %d rows a training batch needs (2, and one per replica)", cfg.Batch, need)
	case lb < need:
		return fmt.Errorf("--labeled-batch %d: fewer than the %d rows a training batch needs (2, and one per replica)", cfg.LabeledBatch, need)
	}
	return nil
}

// dataDir is summary.json's data_dir: --data made absolute when ds was read from that
// dataset directory, "" for a built-in dataset, even where a directory of the built-in's
// name is in the working directory (data.Open takes the built-in; eval would not).
func dataDir(spec string, ds *data.Dataset) string {
	if ds.Dir != spec { // a built-in's Dir is its cache entry
		return ""
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return ""
	}
	return abs
}

// sameRun refuses a run directory that holds a run of another configuration, so that
// a new run never mixes its files with an old one's (a rerun of the same configuration
// gives the same result and may overwrite it). A run of another configuration that
// ended with nothing to keep — no summary.json, no committed checkpoint: it failed or
// was stopped early, say diverged at too high an --lr — is replaced: replaced names
// how its settings differ.
func sameRun(cfg Config) (replaced string, err error) {
	if fi, err := os.Stat(cfg.Out); err == nil && !fi.IsDir() {
		return "", fmt.Errorf("--out %s is a file, not a directory: choose another --out", cfg.Out)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Out, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil { // a file on the way (ENOTDIR), no permission
		return "", fmt.Errorf("--out %s: %v: choose another --out", cfg.Out, errors.Unwrap(err))
	}
	var old struct {
		RunID string `json:"run_id"`
	}
	if json.Unmarshal(b, &old) != nil {
		return "", fmt.Errorf("%s/config.json is not an mct run's config.json: choose another --out", cfg.Out)
	}
	if old.RunID == cfg.RunID() {
		return "", nil
	}
	what := fmt.Sprintf("run id %s, this run %s", old.RunID, cfg.RunID())
	if diff := configDiff(b, cfg); diff != "" {
		what = "that run → this one: " + diff
	}
	_, serr := os.Stat(filepath.Join(cfg.Out, "summary.json"))
	if steps, err := ckpt.Steps(cfg.Out); errors.Is(serr, fs.ErrNotExist) && err == nil && len(steps) == 0 {
		return what, nil
	}
	return "", fmt.Errorf("run directory %s holds a run of another configuration (%s): use another --out, or the same flags to rerun or --resume it",
		cfg.Out, what)
}

// replaceRun clears the way for this run in place of the one sameRun found replaceable
// (what: how their settings differ): it removes that run's uncommitted checkpoints,
// unless the run is still going — in its warmup it has no checkpoint yet, and the two
// would write the same files. Rank 0 alone calls it: a lock taken by another rank to
// look would look like a run going.
func replaceRun(cfg Config, what string) error {
	f, busy := lockRun(cfg.Out)
	if busy {
		return fmt.Errorf("run directory %s holds a run of another configuration that is still running (%s): use another --out, or wait for it to end",
			cfg.Out, what)
	}
	if f != nil {
		f.Close()
	}
	return os.RemoveAll(ckpt.Dir(cfg.Out))
}

// lockRun takes an exclusive flock on run directory dir; the kernel drops it when the
// process ends. Rank 0's reporter holds it to the end of the run, so that replaceRun
// tells a run still going from one that ended. busy: another process (or another open
// of dir) holds it. nil, false where dir cannot be opened or the file system offers no
// flock (some NFS and Lustre mounts): a run there never counts as going.
func lockRun(dir string) (f *os.File, busy bool) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, false
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return f, false
	}
	f.Close()
	return nil, errors.Is(err, syscall.EWOULDBLOCK)
}

// configDiff names the settings in which a run's config.json and cfg differ, as
// "seed 2 → 1, hidden [64,64] → [256,256,256]" ("" when none of its settings do: a
// config.json of an older layout).
func configDiff(configJSON []byte, cfg Config) string {
	var was, now map[string]json.RawMessage
	b, _ := json.Marshal(cfg)
	if json.Unmarshal(configJSON, &was) != nil || json.Unmarshal(b, &now) != nil {
		return ""
	}
	compact := func(m json.RawMessage) string {
		if m == nil {
			return "unset"
		}
		var c bytes.Buffer
		if json.Compact(&c, m) != nil {
			return string(m)
		}
		return c.String()
	}
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if a, b := compact(was[k]), compact(now[k]); a != b {
			diffs = append(diffs, k+" "+a+" → "+b)
		}
	}
	if len(diffs) == len(now) { // nothing in common: not a layout this mct compares
		return ""
	}
	return strings.Join(diffs, ", ")
}

// Reported is an error already printed (by this rank, or by rank 0 for the whole job:
// Refuse); the caller only exits non-zero.
type Reported struct{ Err error }

func (r Reported) Error() string { return r.Err.Error() }
func (r Reported) Unwrap() error { return r.Err }

// Refuse returns err, a reason every rank shares for not starting (its flags), for main
// to print as mct CMD's one line. In a job mpirun or srun launched, rank 0 prints it here,
// on os.Stderr as main would (not on a progress writer, which --quiet discards), and the
// others return it Reported: one line for the job, not one per rank.
func Refuse(cmd string, err error) error {
	if !ranks.Launched() {
		return err
	}
	world, werr := ranks.World()
	if werr != nil {
		return err
	}
	return refuse(world, cmd, err)
}

// refuse is Refuse in a world already joined, for a reason some ranks may lack (err nil
// on them): it returns nil when no rank has one. Otherwise every rank learns so, and none
// is left waiting in a collective the others never reach (their environment differed);
// the lowest rank with a reason prints it, the barrier keeps the others from exiting
// before it has (mpirun ends the job at the first exit), and all return Reported.
func refuse(world ranks.Comm, cmd string, err error) error {
	none := int64(world.Size())
	first := []int64{none}
	if err != nil {
		first[0] = int64(world.Rank())
	}
	world.AllreduceI64(first, ranks.Min)
	switch {
	case first[0] == none:
		return nil
	case first[0] == 0 && world.Rank() == 0:
		fmt.Fprintf(os.Stderr, "mct %s: %v\n", cmd, err)
	case first[0] == int64(world.Rank()):
		fmt.Fprintf(os.Stderr, "mct %s: rank %d: %v\n", cmd, world.Rank(), err)
	}
	world.Barrier()
	world.Close()
	if err == nil {
		err = fmt.Errorf("rank %d refused to start", first[0])
	}
	return Reported{err}
}

// runRank is one rank's whole run; the same code under MPI and the local transport.
func runRank(ctx context.Context, world ranks.Comm, layout ranks.Layout, cfg Config, ds *data.Dataset, transport string, stderr io.Writer) (*Summary, error) {
	start := time.Now()
	peer, pool, err := ranks.Topology(world, layout)
	if err != nil {
		return nil, err
	}
	defer peer.Close()
	defer pool.Close()
	// The split depends only on the labels and the flags: every rank fails here alike.
	split, err := data.MakeSplit(ds.TrainLabels, ds.Classes, cfg.Labeled, cfg.Val, cfg.Seed, cfg.Balanced)
	if err != nil {
		return nil, agreedError{err}
	}
	if cfg.Algo != "supervised" && len(split.Unlabeled) == 0 {
		return nil, agreedError{fmt.Errorf("--algo %s: no unlabeled examples left (every known label is in the labeled or validation set and the data has no -1 labels): use a smaller --labeled or --val", cfg.Algo)}
	}
	if err := checkBatches(cfg, len(split.Labeled), layout.Replicas); err != nil {
		return nil, agreedError{err}
	}
	be, note, err := rankDevice(cfg, world, layout, transport)
	if err != nil {
		return nil, err
	}
	r, err := newRank(cfg, ds, split, be, world, peer, pool)
	if err != nil {
		return nil, err
	}
	replaced, err := sameRun(cfg)
	if replaced != "" && world.Rank() == 0 {
		err = replaceRun(cfg, replaced)
	}
	if !r0OK(world, err) {
		return nil, orOther(err)
	}
	out, err := newReporter(world.Rank() == 0, cfg, stderr)
	if err != nil {
		return nil, err
	}
	defer out.close()
	if replaced != "" {
		out.line("replacing the run of other settings in %s (%s): it ended without summary.json or a committed checkpoint", cfg.Out, replaced)
	}
	r.warn = out.line
	if !out.on {
		// Rank 0 alone reports; another rank's warning (its CUDA graphs turned off) would be
		// lost there, so it goes to stderr itself, with its rank.
		r.warn = func(format string, args ...any) {
			fmt.Fprintf(stderr, "rank %d: %s\n", world.Rank(), fmt.Sprintf(format, args...))
		}
	}
	if out.on {
		r.metricsLen = func() int64 { return out.written }
	}
	for _, n := range []string{note, r.exchangeNote} {
		if n != "" {
			out.line("%s", n)
		}
	}
	var exchange, via string // only MCT exchanges logits
	if cfg.Meta() {
		exchange, via = r.exchange, ", logits via "+r.exchange
	}
	out.line("%s on %s: %d %s × %d replicas (%s), %d labeled, %d unlabeled, %d val, %d test, backend %s%s",
		cfg.Algo, ds.Name, layout.Views, cfg.probeUnit(), layout.Replicas, transport, len(split.Labeled), len(split.Unlabeled),
		len(split.Val), len(ds.TestLabels), be.Name(), via)

	sum := &Summary{Algo: cfg.Algo, Views: cfg.Probes(), LabeledFraction: cfg.Labeled, Labeled: len(split.Labeled),
		Seed: cfg.Seed, World: world.Size(), Replicas: layout.Replicas, Transport: transport, LogitsExchange: exchange,
		Backend: be.Name(), RunID: cfg.RunID(), Config: cfg}
	sum.DataDir = dataDir(cfg.Data, ds)
	names := cfg.Probes()
	label := func(e int) int32 { return ds.TrainLabels[e] }
	var examples float64
	var phase time.Duration

	var saved *savedState
	var adam, best []byte
	if cfg.Resume {
		if saved, adam, best, err = r.resume(); err != nil {
			return nil, err
		}
		if saved == nil { // a sweep resumes every run; a user may have mistyped --out
			out.line("--resume: no committed checkpoint in %s, so the run starts from the beginning", cfg.Out)
		}
	}
	var keep int64 // of metrics.jsonl: the records up to the checkpoint
	if saved != nil {
		keep = saved.Metrics
		switch saved.Phase {
		case phaseMCT:
			out.line("resumed from the checkpoint of update %d (%s epoch %d)", saved.MCT.Updates, strings.ToUpper(cfg.Algo), saved.MCT.Epoch)
		case phaseSupervised:
			out.line("resumed from the checkpoint of %s epoch %d", supervisedName(cfg), saved.Supervised.Tick)
		case phaseCotrain:
			out.line("resumed from the checkpoint of co-training round %d, epoch %d", saved.Cotrain.Round+1, saved.Cotrain.Train.Tick)
		}
	}
	if err := out.keepMetrics(keep); !r.allOK(err) {
		return nil, orOther(err)
	}
	stopped := func(at string) {
		out.line("stopped by a signal at %s; checkpoint committed in %s. Resume with the same flags and --resume", at, cfg.Out)
	}

	switch cfg.Algo {
	case "supervised", "mct", "mpl":
		var st *mctState
		if saved != nil {
			st = saved.MCT
		}
		if st == nil {
			var sup *supState
			var prior float64
			if saved != nil {
				sup, prior = saved.Supervised, saved.Supervised.Seconds
			}
			t := time.Now()
			out.status("warmup: training each view on %d labels", len(split.Labeled))
			var at int // the epoch boundary a stop request checkpointed
			sup, err := r.trainSupervised(ctx, split.Labeled, label, 0, sup, adam, best, func(s *supState, best []byte) error {
				s.Seconds, at = prior+time.Since(t).Seconds(), s.Tick
				return r.checkpoint(int64(s.Tick), s.Epoch, &savedState{Phase: phaseSupervised, Supervised: s}, best)
			}, func(epoch int, val float64) {
				out.status("%s epoch %d (of at most %d): view %s val acc %.4f", supervisedName(cfg), epoch, cfg.WarmupEpochs, names[r.view], val)
			})
			if errors.Is(err, ErrStopped) {
				stopped(fmt.Sprintf("%s epoch %d", supervisedName(cfg), at))
				return nil, err
			}
			if err != nil {
				return nil, err
			}
			adam, best = nil, nil // the supervised phase's
			r.logWarmup(out, sup.Hist, names)
			phase = time.Duration((prior + time.Since(t).Seconds()) * float64(time.Second))
			examples = float64(len(split.Labeled)) * float64(len(sup.Hist))
			if cfg.Algo == "supervised" {
				break
			}
			st = &mctState{Sched: *newPlateau(cfg.MCTLR, 0.5, max(cfg.Patience/2, 1)), Warmup: out.warmup,
				WarmupVal: r.evaluate(split.Val, false, names), WarmupTest: r.evaluate(allRows(len(ds.TestLabels)), true, names)}
			st.Best = st.WarmupVal.Ensemble
			out.line("after warmup: val ensemble %.4f, test ensemble %.4f", st.WarmupVal.Ensemble, st.WarmupTest.Ensemble)
			r.phaseStart = time.Now()
			r.newAdam(cfg.MCTLR) // the MCT phase's optimizer, saved from update 0
			if err := r.saveMCT(st, nil); err != nil {
				return nil, err
			}
		}
		sum.WarmupValAccuracy, sum.WarmupTestAccuracy = &st.WarmupVal, &st.WarmupTest
		out.warmup, out.epochs = st.Warmup, st.Records
		r.phaseStart, r.priorSeconds = time.Now(), st.Seconds
		err := r.trainMCT(ctx, st, adam, best, names, func(e mctEpoch) {
			out.metric(map[string]any{"phase": "mct", "record": e})
			out.epochs = append(out.epochs, e)
			out.line("%s epoch %d: val ensemble %.4f %s  h %s  pseudo-label acc %s  agreement %.3f",
				cfg.Algo, e.Epoch, e.Val.Ensemble, fmtViews(names, e.Val.PerView), fmtFloats(e.H, "%+.2e"),
				pseudoText(e.PseudoAcc), e.Agreement)
		}, func(done, total int) {
			out.status("%s epoch %d: update %d/%d", cfg.Algo, len(out.epochs)+1, done, total)
		})
		if errors.Is(err, ErrStopped) {
			stopped(fmt.Sprintf("update %d", st.Updates))
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		sum.Updates, sum.CUDAGraphs = st.Updates, r.graphsEverywhere()
		phase = time.Duration((r.priorSeconds + time.Since(r.phaseStart).Seconds()) * float64(time.Second))
		examples = float64(st.Updates * cfg.Batch)
	case "cotrain":
		cs := &cotrainState{}
		if saved != nil {
			cs = saved.Cotrain
		}
		err := r.cotrain(ctx, names, cs, adam, best, func(c cotrainRound) {
			out.metric(map[string]any{"phase": "cotrain", "record": c})
			out.line("co-training round %d: +%d examples (label acc %.3f), labeled %v, val ensemble %.4f",
				c.Round, c.Added, c.AddedAcc, c.Labeled, c.Val.Ensemble)
		})
		if errors.Is(err, ErrStopped) {
			stopped(fmt.Sprintf("co-training round %d, epoch %d", cs.Round+1, cs.Train.Tick))
			return nil, err
		}
		if err != nil {
			return nil, err
		}
	}

	sum.ValAccuracy = r.evaluate(split.Val, false, names)
	sum.TestAccuracy = r.evaluate(allRows(len(ds.TestLabels)), true, names)
	sum.ParamChecksum = r.checksums(names)
	var saveErr error
	if r.replica == 0 { // replicas hold the same bits (checksums): one file per view
		saveErr = saveModel(ModelPath(cfg.Out, names[r.view]), r.probe, names[r.view], r.vd)
	}
	if !r.allOK(saveErr) {
		return nil, fmt.Errorf("save the final probe: %w", orOther(saveErr))
	}
	sum.WallSeconds = time.Since(start).Seconds()
	if phase > 0 && examples > 0 {
		sum.ExamplesPerSecondPerView = examples / phase.Seconds()
	}
	if err := out.finish(sum); err != nil {
		return nil, err
	}
	return sum, nil
}

// supervisedName names the supervised phase in messages: MCT's warmup, or the whole of
// --algo supervised.
func supervisedName(cfg Config) string {
	if cfg.Meta() {
		return "warmup"
	}
	return "supervised"
}

// checksums gathers every view's parameter checksum (SHA-256 of the float32 parameters).
func (r *rank) checksums(names []string) map[string]string {
	raw, err := hex.DecodeString(r.probe.Checksum())
	if err != nil || len(raw) != 32 {
		panic("nn.Probe.Checksum is not a SHA-256 hex string")
	}
	mine := make([]int64, 4)
	for i := range mine {
		for b := 0; b < 8; b++ {
			mine[i] |= int64(raw[i*8+b]) << (8 * b)
		}
	}
	if r.R > 1 {
		// Replicas must hold the same bits: they take identical steps on summed gradients.
		reps := make([]int64, 4*r.R)
		r.pool.AllgatherI64(mine, reps)
		for i := range reps {
			if reps[i] != mine[i%4] {
				panic(fmt.Sprintf("replicas of view %s diverged: their parameters differ", names[r.view]))
			}
		}
	}
	all := make([]int64, 4*r.V)
	r.peer.AllgatherI64(mine, all)
	out := map[string]string{}
	for v, name := range names {
		b := make([]byte, 32)
		for i := 0; i < 4; i++ {
			for k := 0; k < 8; k++ {
				b[i*8+k] = byte(all[v*4+i] >> (8 * k))
			}
		}
		out[name] = hex.EncodeToString(b)
	}
	return out
}

// logWarmup writes every view's warmup epochs to metrics.jsonl (views train
// independently, so their histories are gathered, padded to the epoch budget).
func (r *rank) logWarmup(out *reporter, hist []epochRecord, names []string) {
	E := r.cfg.WarmupEpochs
	mine := make([]float64, 3*E)
	for i := range mine {
		mine[i] = math.NaN()
	}
	for e, h := range hist {
		mine[3*e], mine[3*e+1], mine[3*e+2] = h.Loss, h.ValAcc, h.LR
	}
	all := make([]float64, r.V*3*E)
	r.peer.AllgatherF64(mine, all)
	for v, name := range names {
		var last, best float64
		var n int
		for e := 0; e < E; e++ {
			rec := all[(v*E+e)*3 : (v*E+e+1)*3]
			if math.IsNaN(rec[0]) {
				break
			}
			out.metric(map[string]any{"phase": "warmup", "view": name, "epoch": e + 1, "loss": rec[0], "val_acc": rec[1], "lr": rec[2]})
			out.warmup[name] = append(out.warmup[name], rec[1])
			last, n, best = rec[1], e+1, math.Max(best, rec[1])
		}
		out.line("warmup %s: %d epochs, val %.4f (best %.4f)", name, n, last, best)
	}
}

// blasThreads is the GEMM threads per rank: the cores divided among the ranks of this
// process (local transport) or the cores this process may use (MPI, usually bound to
// one). OpenBLAS's results depend on its thread count, so a run is bit-identical across
// transports when this number is: MCT_BLAS_THREADS pins it.
func blasThreads(transport string, l ranks.Layout) int {
	if n, err := strconv.Atoi(os.Getenv("MCT_BLAS_THREADS")); err == nil && n > 0 {
		return n
	}
	if transport == "local" {
		return max(1, runtime.GOMAXPROCS(0)/l.World())
	}
	return runtime.GOMAXPROCS(0)
}

func allRows(n int) []int {
	rows := make([]int, n)
	for i := range rows {
		rows[i] = i
	}
	return rows
}

// pseudoText is the progress line's pseudo-label accuracy: n/a when no unlabeled row
// has a known label to compare with.
func pseudoText(acc []float64) string {
	if acc == nil {
		return "n/a"
	}
	return fmtFloats(acc, "%.3f")
}
