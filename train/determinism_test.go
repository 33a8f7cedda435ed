package train

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"mct/data"
)

// synthDir imports a small four-view dataset (data.Import from NPY files): 4 classes,
// every view a noisy linear image of a class prototype, so training makes progress and
// pseudo-labels are informative. Views differ in width and noise.
func synthDir(t *testing.T) (dir string, views []string) {
	t.Helper()
	dir, views, _ = synthImport(t, 1, 0)
	return dir, views
}

// synthFiles are the NPY files a synthetic dataset was imported from.
type synthFiles struct {
	views  map[string][2]string // raw features of each view: train, test
	labels [2]string
}

// synthImport is synthDir with every raw feature scaled by scale and moved by shift
// times its column number before the import, which standardises it; it also returns the
// files given to data.Import.
func synthImport(t *testing.T, scale, shift float64) (dir string, views []string, raw synthFiles) {
	t.Helper()
	const classes, nTrain, nTest = 4, 600, 120
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(21, 22))
	labels := [2][]int32{make([]int32, nTrain), make([]int32, nTest)}
	var labelFiles [2]string
	for k, split := range []string{"train", "test"} {
		for i := range labels[k] {
			labels[k][i] = int32(rng.IntN(classes))
		}
		labelFiles[k] = filepath.Join(src, "labels-"+split+".npy")
		if err := data.WriteNPY(labelFiles[k], data.NewInt64([]int{len(labels[k])}, labels[k])); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][2]string{}
	for v, dim := range []int{6, 9, 12, 5} {
		name := fmt.Sprintf("v%d", v)
		proto := make([]float64, classes*dim)
		for i := range proto {
			proto[i] = rng.NormFloat64()
		}
		noise := 0.8 + 0.3*float64(v)
		var pair [2]string
		for k, split := range []string{"train", "test"} {
			x := make([]float32, len(labels[k])*dim)
			for i, c := range labels[k] {
				for j := 0; j < dim; j++ {
					x[i*dim+j] = float32(scale*(proto[int(c)*dim+j]+noise*rng.NormFloat64()) + shift*float64(j))
				}
			}
			pair[k] = filepath.Join(src, name+"-"+split+".npy")
			if err := data.WriteNPY(pair[k], data.NewFloat32([]int{len(labels[k]), dim}, x)); err != nil {
				t.Fatal(err)
			}
		}
		files[name] = pair
		views = append(views, name)
	}
	dir = filepath.Join(t.TempDir(), "synth")
	if err := data.Import(files, labelFiles, classes, dir); err != nil {
		t.Fatal(err)
	}
	return dir, views, synthFiles{files, labelFiles}
}

// tinyRun is the configuration of the end-to-end tests on synthDir's data: Defaults with
// algo, the dataset dir, the views and the seed, 5% of the labels, 100 validation
// examples, probes 16 wide and batches of 64, quiet, writing into a fresh temporary
// directory. Tests set the epochs and whatever else they vary.
func tinyRun(t *testing.T, algo, dir string, views []string, seed uint64) Config {
	t.Helper()
	cfg := Defaults()
	cfg.Algo, cfg.Data, cfg.Views, cfg.Seed = algo, dir, views, seed
	cfg.Labeled, cfg.Val = 0.05, 100
	cfg.Hidden, cfg.Batch = []int{16, 16, 16}, 64
	cfg.Out, cfg.Quiet = t.TempDir(), true
	return cfg
}

// sameParams fails unless the runs a and b (named so in messages) ended with the same
// parameters, by checksum, for every view of a, and a has a checksum for each: two empty
// summaries are not the same run.
func sameParams(t *testing.T, nameA string, a *Summary, nameB string, b *Summary) {
	t.Helper()
	if len(a.ParamChecksum) != len(a.Views) || len(a.Views) == 0 {
		t.Errorf("%s: %d parameter checksums for the views %v", nameA, len(a.ParamChecksum), a.Views)
	}
	for _, v := range a.Views {
		if a.ParamChecksum[v] != b.ParamChecksum[v] {
			t.Errorf("view %s: %s gave parameters %s, %s %s", v, nameA, a.ParamChecksum[v], nameB, b.ParamChecksum[v])
		}
	}
}

// TestRunDeterministic runs MCT end to end (train.Run: warmup, MCT epochs, evaluation)
// with 2, 3 and 4 views: the same seed twice gives bit-identical parameters of every
// view, another seed gives other parameters.
func TestRunDeterministic(t *testing.T) {
	dir, all := synthDir(t)
	for _, V := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("V%d", V), func(t *testing.T) {
			run := func(seed uint64) *Summary {
				cfg := tinyRun(t, "mct", dir, all[:V], seed)
				cfg.WarmupEpochs, cfg.Patience, cfg.Epochs = 4, 2, 2
				s, err := Run(context.Background(), cfg, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				if s.Updates == 0 {
					t.Fatalf("seed %d: no MCT updates ran", seed)
				}
				if len(s.ParamChecksum) != V {
					t.Fatalf("seed %d: %d checksums for %d views", seed, len(s.ParamChecksum), V)
				}
				return s
			}
			a, b, c := run(1), run(1), run(2)
			sameParams(t, "seed 1", a, "seed 1 again", b)
			for _, name := range all[:V] {
				if a.ParamChecksum[name] == c.ParamChecksum[name] {
					t.Errorf("view %s: seeds 1 and 2 gave identical parameters", name)
				}
			}
			if a.TestAccuracy.Ensemble != b.TestAccuracy.Ensemble {
				t.Errorf("the same seed gave test accuracies %g and %g", a.TestAccuracy.Ensemble, b.TestAccuracy.Ensemble)
			}
			t.Logf("%d views: %d updates, test ensemble %.3f (seed 1), %.3f (seed 2)", V, a.Updates, a.TestAccuracy.Ensemble, c.TestAccuracy.Ensemble)
		})
	}
}
