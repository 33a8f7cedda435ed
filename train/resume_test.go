package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"mct/ckpt"
	"mct/data"
	"mct/ranks"
)

// countdown is a context whose Err reports a stop request (context.Canceled) from its
// n+1-th call on. A run calls Err once per rank at each boundary where it may stop (an
// epoch of the supervised or co-training phase, an MCT update) and then agrees with the
// other ranks in a collective, so no rank reaches boundary k+1 before every rank has
// called Err at boundary k: with W ranks, n = W·k stops the run at boundary k, however
// the goroutines are scheduled. Nothing in a run waits on Done, which stays nil.
type countdown struct {
	context.Context
	left atomic.Int64
}

func stopAt(world, boundary int) *countdown {
	c := &countdown{Context: context.Background()}
	c.left.Store(int64(world * boundary))
	return c
}

func (c *countdown) Err() error {
	if c.left.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// runReplicas is Run with R replicas of every view over the local transport (Run itself
// places one rank per view).
func runReplicas(ctx context.Context, cfg Config, replicas int) (*Summary, error) {
	if replicas == 1 {
		return Run(ctx, cfg, io.Discard)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ds, err := data.Open(cfg.Data, cfg.Views, data.Options{})
	if err != nil {
		return nil, err
	}
	return runLocal(ctx, cfg, ds, ranks.Layout{Views: len(cfg.Views), Replicas: replicas}, io.Discard)
}

// latestState decodes the state section of the newest committed checkpoint in dir.
func latestState(t *testing.T, cfg Config) *savedState {
	t.Helper()
	if err := cfg.Validate(); err != nil { // the run's identity is that of its validated config
		t.Fatal(err)
	}
	_, sec, err := ckpt.LatestForView(cfg.Out, 0, cfg.RunID())
	if err != nil {
		t.Fatal(err)
	}
	st := new(savedState)
	if err := json.Unmarshal(sec["run"], st); err != nil {
		t.Fatal(err)
	}
	return st
}

// where says where a checkpoint stands, as the cases below expect it.
func (st *savedState) where() string {
	switch st.Phase {
	case phaseSupervised:
		return fmt.Sprintf("supervised tick %d", st.Supervised.Tick)
	case phaseCotrain:
		return fmt.Sprintf("cotrain round %d tick %d", st.Cotrain.Round, st.Cotrain.Train.Tick)
	case phaseMCT:
		return fmt.Sprintf("mct update %d", st.MCT.Updates)
	}
	return "phase " + st.Phase
}

// readMetrics decodes the records of dir/metrics.jsonl of the given phase, in order.
func readMetrics[T any](t *testing.T, dir, phase string) []T {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []T
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var p struct {
			Phase string `json:"phase"`
		}
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if p.Phase != phase {
			continue
		}
		var rec T
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// warmupLR reads each view's learning rate in each of its supervised epochs from
// metrics.jsonl.
func warmupLR(t *testing.T, dir string) map[string][]float64 {
	t.Helper()
	lr := map[string][]float64{}
	for _, m := range readMetrics[struct {
		View string  `json:"view"`
		LR   float64 `json:"lr"`
	}](t, dir, "warmup") {
		lr[m.View] = append(lr[m.View], m.LR)
	}
	return lr
}

// TestStopAndResume stops runs of every algorithm at chosen boundaries (a context that
// reports the stop request at the k-th boundary, see countdown), in the supervised
// warmup, the MCT phase, --algo supervised (after some views stopped early and wait for
// the others) and --algo cotrain (within a round and between rounds), several times in a
// row, resuming after each stop; the resumed run must end with the parameters, the
// accuracies and the metrics.jsonl of the uninterrupted run, bit for bit. Also with two
// replicas of each view.
func TestStopAndResume(t *testing.T) {
	dir, all := synthDir(t)
	base := func(algo string, views int) Config {
		cfg := tinyRun(t, algo, dir, all[:views], 7)
		cfg.Dropout = 0.1
		return cfg
	}
	mct := base("mct", 2)
	mct.WarmupEpochs, mct.Patience, mct.Epochs = 4, 4, 2 // 4 warmup epochs, 8 updates an epoch
	noEpochs := mct
	noEpochs.Epochs = 0
	sup := base("supervised", 3)
	sup.WarmupEpochs, sup.Patience = 40, 6 // the learning rate halves after 4 epochs without gain
	cot := base("cotrain", 3)
	cot.WarmupEpochs, cot.Patience = 3, 3 // 3 epochs a round: boundaries 0-3 each
	cot.CotrainRounds, cot.CotrainK = 2, 5

	type stop struct {
		k     int    // boundary, counted from the start of this (resumed) process
		where string // where the checkpoint must stand
	}
	cases := []struct {
		name     string
		cfg      Config
		replicas int
		stops    []stop
	}{
		// Boundaries of the MCT run: warmup ticks 0-4 (4 is its end), then one per update.
		{"mct", mct, 1, []stop{{2, "supervised tick 2"}, {3 + 10, "mct update 10"}}},
		{"mct-replicas", mct, 2, []stop{{0, "supervised tick 0"}, {3, "supervised tick 3"}, {2 + 5, "mct update 5"}}},
		// A stop at the end of the warmup is taken at the MCT phase's first update.
		{"mct-warmup-end", mct, 1, []stop{{4, "mct update 0"}}},
		// Without MCT epochs the MCT checkpoint of update 0 is the last: it must supersede
		// the warmup's of a higher step number.
		{"mct-no-epochs", noEpochs, 1, []stop{{3, "supervised tick 3"}}},
		// The supervised stops come from the reference run's epochs (see below).
		{"supervised", sup, 1, nil},
		// Each co-training round has boundaries 0-3; a stop at a round's last is taken at
		// the next round's first, after the exchange.
		{"cotrain", cot, 1, []stop{{1, "cotrain round 0 tick 1"}, {3, "cotrain round 1 tick 0"}, {4 + 1, "cotrain round 2 tick 1"}}},
		{"cotrain-replicas", cot, 2, []stop{{4 + 2, "cotrain round 1 tick 2"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			world := len(tc.cfg.Views) * tc.replicas
			ref := tc.cfg
			ref.Out = t.TempDir()
			want, err := runReplicas(context.Background(), ref, tc.replicas)
			if err != nil {
				t.Fatal(err)
			}
			stops := tc.stops
			if tc.cfg.Algo == "supervised" {
				// Stop when the view that trains least has stopped early and passes the
				// boundaries of the others without training; after the scheduler first cut
				// the learning rate of the view that trains longest; and before its last epoch.
				lrs := warmupLR(t, ref.Out)
				lo, hi, cut := tc.cfg.WarmupEpochs, 0, 0
				for _, lr := range lrs {
					lo = min(lo, len(lr))
					if len(lr) > hi {
						hi, cut = len(lr), slices.IndexFunc(lr, func(x float64) bool { return x < lr[0] })
					}
				}
				if lo == hi || !(lo < cut && cut < hi-1) {
					t.Fatalf("views' learning rates by epoch %v: the case needs views that stop at different epochs and a cut in the learning rate of the longest-training view after the first stops", lrs)
				}
				stops = []stop{{lo, fmt.Sprintf("supervised tick %d", lo)}, {cut - lo, fmt.Sprintf("supervised tick %d", cut)},
					{hi - 1 - cut, fmt.Sprintf("supervised tick %d", hi-1)}}
				t.Logf("stops %v", stops)
			}
			cfg := tc.cfg
			cfg.Out = t.TempDir()
			for i, s := range stops {
				cfg.Resume = i > 0
				if _, err := runReplicas(stopAt(world, s.k), cfg, tc.replicas); !errors.Is(err, ErrStopped) {
					t.Fatalf("stop %d at boundary %d: got %v, want ErrStopped", i+1, s.k, err)
				}
				if got := latestState(t, cfg).where(); got != s.where {
					t.Fatalf("stop %d at boundary %d: the checkpoint stands at %s, want %s", i+1, s.k, got, s.where)
				}
				if _, err := os.Stat(filepath.Join(cfg.Out, "summary.json")); err == nil {
					t.Fatalf("stop %d: a stopped run wrote summary.json", i+1)
				}
			}
			cfg.Resume = true
			got, err := runReplicas(context.Background(), cfg, tc.replicas)
			if err != nil {
				t.Fatal(err)
			}
			compareRuns(t, got, want, cfg.Out, ref.Out)
			if st := latestState(t, cfg); cfg.Algo == "mct" && st.Phase != phaseMCT {
				t.Errorf("after the run the newest checkpoint stands at %s, want the MCT phase", st.where())
			}
		})
	}
}

// compareRuns fails unless two runs ended alike: parameters, accuracies, updates, and
// the records of metrics.jsonl.
func compareRuns(t *testing.T, got, want *Summary, gotDir, wantDir string) {
	t.Helper()
	sameParams(t, "resumed", got, "uninterrupted", want)
	if !reflect.DeepEqual(got.TestAccuracy, want.TestAccuracy) || !reflect.DeepEqual(got.ValAccuracy, want.ValAccuracy) {
		t.Errorf("accuracies: resumed test %v val %v, uninterrupted test %v val %v", got.TestAccuracy, got.ValAccuracy, want.TestAccuracy, want.ValAccuracy)
	}
	if !reflect.DeepEqual(got.WarmupTestAccuracy, want.WarmupTestAccuracy) || !reflect.DeepEqual(got.WarmupValAccuracy, want.WarmupValAccuracy) {
		t.Errorf("warmup accuracies: resumed %v %v, uninterrupted %v %v", got.WarmupTestAccuracy, got.WarmupValAccuracy, want.WarmupTestAccuracy, want.WarmupValAccuracy)
	}
	if got.Updates != want.Updates {
		t.Errorf("updates: resumed %d, uninterrupted %d", got.Updates, want.Updates)
	}
	a, err := os.ReadFile(filepath.Join(gotDir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(wantDir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("metrics.jsonl: resumed %d records, uninterrupted %d, or they differ:\n%s\nvs\n%s",
			strings.Count(string(a), "\n"), strings.Count(string(b), "\n"), a, b)
	}
}

// stoppedAtUpdate2 stops a two-view MCT run at its second update and returns its
// configuration, set to resume.
func stoppedAtUpdate2(t *testing.T) Config {
	t.Helper()
	dir, all := synthDir(t)
	cfg := tinyRun(t, "mct", dir, all[:2], 7)
	cfg.WarmupEpochs, cfg.Patience, cfg.Epochs = 2, 2, 1
	if _, err := Run(stopAt(2, 3+2), cfg, io.Discard); !errors.Is(err, ErrStopped) { // MCT update 2
		t.Fatalf("got %v, want ErrStopped", err)
	}
	cfg.Resume = true
	return cfg
}

// rewriteCheckpoint rewrites the sections of every rank's file (two ranks) of the newest
// committed checkpoint of cfg's run with edit, commits the step again and returns it.
func rewriteCheckpoint(t *testing.T, cfg Config, edit func(sec map[string][]byte)) int64 {
	t.Helper()
	id := cfg
	if err := id.Validate(); err != nil {
		t.Fatal(err)
	}
	steps, err := ckpt.Steps(cfg.Out)
	if err != nil || len(steps) == 0 {
		t.Fatalf("steps %v, %v", steps, err)
	}
	step := steps[len(steps)-1]
	// Load both ranks' files before writing any: a write uncommits the step.
	var heads [2]ckpt.Header
	var secs [2]map[string][]byte
	for rank := range 2 {
		h, sec, err := ckpt.Load(cfg.Out, step, rank, id.RunID())
		if err != nil {
			t.Fatal(err)
		}
		edit(sec)
		heads[rank], secs[rank] = h, sec
	}
	for rank := range 2 {
		if err := ckpt.Save(cfg.Out, heads[rank], secs[rank]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ckpt.Commit(cfg.Out, step, 2, cfg.Keep); err != nil {
		t.Fatal(err)
	}
	return step
}

// runSection decodes a checkpoint's "run" section, which must hold an MCT state.
func runSection(t *testing.T, sec map[string][]byte) *savedState {
	t.Helper()
	st := new(savedState)
	if err := json.Unmarshal(sec["run"], st); err != nil || st.MCT == nil {
		t.Fatalf("run section %s: %v", sec["run"], err)
	}
	return st
}

// TestOldStateLayoutIsOneError: a checkpoint of the layout before version 2 (a "state"
// section holding the MCT state alone) is refused with one line that names the
// checkpoint and what to do, not misread.
func TestOldStateLayoutIsOneError(t *testing.T) {
	cfg := stoppedAtUpdate2(t)
	step := rewriteCheckpoint(t, cfg, func(sec map[string][]byte) {
		var err error
		if sec["state"], err = json.Marshal(runSection(t, sec).MCT); err != nil {
			t.Fatal(err)
		}
		delete(sec, "run")
	})
	_, err := Run(context.Background(), cfg, io.Discard)
	want := fmt.Sprintf("checkpoint step-%d in %s/ckpt: state layout version 1, this mct reads version %d", step, cfg.Out, stateVersion)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("resume from an old layout: got %v, want one line containing %q", err, want)
	}
}

// TestBadSamplerPositionIsOneError: an MCT checkpoint whose sampler position does not
// fit the run's examples (a dataset rebuilt with fewer rows under the same path) is
// refused with one line, not a panic of data.Sampler.Restore.
func TestBadSamplerPositionIsOneError(t *testing.T) {
	cfg := stoppedAtUpdate2(t)
	var bad data.SamplerState
	rewriteCheckpoint(t, cfg, func(sec map[string][]byte) {
		st := runSection(t, sec)
		st.MCT.U.Pos = 1 << 20
		bad = st.MCT.U
		var err error
		if sec["run"], err = json.Marshal(st); err != nil {
			t.Fatal(err)
		}
	})
	_, err := Run(context.Background(), cfg, io.Discard)
	want := fmt.Sprintf("checkpoint: sampler position %+v does not fit the", bad)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("resume with a sampler position beyond the data: got %v, want one line containing %q", err, want)
	}
}

// TestResumeWithMoreReplicas: a co-training run stopped with one rank per view resumes
// with two replicas of each view (each loads its view's checkpoint) and finishes as well
// as the uninterrupted run (not bit for bit: replicas add their gradients and BatchNorm
// sums in another order).
func TestResumeWithMoreReplicas(t *testing.T) {
	dir, all := synthDir(t)
	cfg := tinyRun(t, "cotrain", dir, all[:2], 7)
	cfg.LR = 1e-2
	cfg.WarmupEpochs, cfg.Patience, cfg.CotrainRounds, cfg.CotrainK = 10, 10, 2, 5
	ref := cfg
	ref.Out = t.TempDir()
	want, err := Run(context.Background(), ref, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Out = t.TempDir()
	if _, err := runReplicas(stopAt(2, 11+1), cfg, 1); !errors.Is(err, ErrStopped) {
		t.Fatalf("got %v, want ErrStopped", err)
	}
	if got := latestState(t, cfg).where(); got != "cotrain round 1 tick 1" {
		t.Fatalf("the checkpoint stands at %s, want cotrain round 1 tick 1", got)
	}
	cfg.Resume = true
	got, err := runReplicas(context.Background(), cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("test ensemble %.4f resumed with 2 replicas, %.4f uninterrupted with 1", got.TestAccuracy.Ensemble, want.TestAccuracy.Ensemble)
	if got.Replicas != 2 || math.Abs(got.TestAccuracy.Ensemble-want.TestAccuracy.Ensemble) > 0.05 || want.TestAccuracy.Ensemble < 0.5 {
		t.Errorf("resumed with 2 replicas: %d replicas, test ensemble %.3f; uninterrupted %.3f", got.Replicas, got.TestAccuracy.Ensemble, want.TestAccuracy.Ensemble)
	}
}
