package train

import (
	"context"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mct/ckpt"
	"mct/data"
	"mct/internal/testenv"
)

// TestModelInPyTorch: python/mct_probe.py loads a finished run's model files and, given
// the raw features as they went into mct data import (far from standardised: scaled by 3,
// column j moved by 5j), computes the logits mct computes on its standardised test split —
// for every architecture, and with a temperature. Its command line writes the classes.
func TestModelInPyTorch(t *testing.T) {
	testenv.Torch(t, testenv.Python)
	dir, views, raw := synthImport(t, 3, 5)
	type job struct {
		name, model, features, logits string
		want                          []float32
	}
	var jobs []job
	for _, c := range []struct {
		algo, arch string
		hidden     []int
		temp       float32
	}{
		{"mct", "fcnn", []int{16, 16, 16}, 1},
		{"supervised", "mlp", []int{16, 8}, 1.5},
		{"supervised", "linear", nil, 1},
	} {
		cfg := tinyRun(t, c.algo, dir, views[:2], 1)
		cfg.Arch, cfg.Hidden, cfg.Temperature = c.arch, c.hidden, c.temp
		cfg.WarmupEpochs, cfg.Epochs = 3, 1
		if _, err := Run(context.Background(), cfg, io.Discard); err != nil {
			t.Fatalf("%s: %v", c.arch, err)
		}
		p, err := Predict(cfg.Out, "", "")
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range p.Views {
			jobs = append(jobs, job{c.arch + ", view " + v, ModelPath(cfg.Out, v), raw.views[v][1], filepath.Join(t.TempDir(), "logits.npy"), p.Logits[i]})
		}
	}
	// One interpreter for every model (importing torch takes a second or two).
	args := []string{"-c", `import sys, numpy as np, torch
sys.path.insert(0, "../python")
import mct_probe
a = sys.argv[1:]
for model, features, out in zip(a[0::3], a[1::3], a[2::3]):
    x = np.load(features).astype(np.float64)  # as NumPy computes: the probe takes any float type
    with torch.no_grad():
        np.save(out, mct_probe.load(model)(torch.from_numpy(x)).numpy())`}
	for _, j := range jobs {
		args = append(args, j.model, j.features, j.logits)
	}
	if o, err := exec.Command(testenv.Python, args...).CombinedOutput(); err != nil {
		t.Fatalf("mct_probe.load: %v\n%s", err, o)
	}
	for _, j := range jobs {
		got := readNPY(t, j.logits)
		if len(got) != len(j.want) {
			t.Fatalf("%s: PyTorch gave %d logits, mct %d", j.name, len(got), len(j.want))
		}
		worst := logitsDiff(got, j.want)
		t.Logf("%s: largest difference %.2g", j.name, worst)
		if worst > 1e-4 {
			t.Errorf("%s: PyTorch's logits differ from mct's by %.3g (relative to 1+|z|)", j.name, worst)
		}
	}

	// The command line: the classes are the argmax of the logits it loaded.
	j := jobs[0]
	classes := filepath.Join(t.TempDir(), "classes.npy")
	if o, err := exec.Command(testenv.Python, "../python/mct_probe.py", j.model, j.features, "--classes", classes).CombinedOutput(); err != nil {
		t.Fatalf("mct_probe.py: %v\n%s", err, o)
	}
	a, err := data.ReadNPY(classes)
	if err != nil {
		t.Fatal(err)
	}
	gotC, err := a.Int32s()
	if err != nil {
		t.Fatal(err)
	}
	logits := readNPY(t, j.logits)
	if len(gotC) == 0 || len(logits) != len(gotC)*len(logits)/len(gotC) {
		t.Fatalf("mct_probe.py --classes: %d classes for %d logits", len(gotC), len(logits))
	}
	C := len(logits) / len(gotC)
	for i, c := range gotC {
		row := logits[i*C : (i+1)*C]
		if want := slices.Index(row, slices.Max(row)); int(c) != want {
			t.Fatalf("mct_probe.py --classes: row %d class %d, the argmax of its logits is %d", i, c, want)
		}
	}
}

// TestPredictOtherDataset: a run's probes predict on another dataset directory whose
// features were standardised by other statistics (imported with another train split: one
// class's rows) as they do on the run's own, the same raw test features giving the same
// logits; without restandardising, the probes would see shifted features.
func TestPredictOtherDataset(t *testing.T) {
	dir, views, raw := synthImport(t, 3, 5)
	cfg := tinyRun(t, "mct", dir, views[:2], 1)
	cfg.WarmupEpochs, cfg.Epochs = 3, 1
	if _, err := Run(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	labels := readInts(t, raw.labels[0])
	var keep []int
	for i, y := range labels {
		if y == 0 {
			keep = append(keep, i)
		}
	}
	otherLabels := [2]string{filepath.Join(src, "labels-train.npy"), raw.labels[1]}
	writeNPY(t, src, "labels-train.npy", data.NewInt64([]int{len(keep)}, make([]int32, len(keep))))
	files := map[string][2]string{}
	for _, v := range views[:2] {
		x := readNPY(t, raw.views[v][0])
		dim := len(x) / len(labels)
		sub := make([]float32, len(keep)*dim)
		data.Gather(sub, x, dim, keep)
		writeNPY(t, src, v+"-train.npy", data.NewFloat32([]int{len(keep), dim}, sub))
		files[v] = [2]string{filepath.Join(src, v+"-train.npy"), raw.views[v][1]}
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := data.Import(files, otherLabels, 4, other); err != nil {
		t.Fatal(err)
	}
	own, err := Predict(cfg.Out, "", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Predict(cfg.Out, other, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range own.Views {
		worst := logitsDiff(got.Logits[i], own.Logits[i])
		t.Logf("view %s: largest difference %.2g", v, worst)
		if worst > 1e-4 {
			t.Errorf("view %s: logits on the other dataset differ from the run's own by %.3g (relative to 1+|z|)", v, worst)
		}
	}
}

// logitsDiff is the largest |got−want| relative to 1+|want|: float32 logits computed in
// another order differ by ~1e-6 at most; a step left out moves them by far more.
func logitsDiff(got, want []float32) float64 {
	worst := 0.0
	for k, z := range want {
		worst = math.Max(worst, math.Abs(float64(got[k])-float64(z))/(1+math.Abs(float64(z))))
	}
	return worst
}

func readInts(t *testing.T, path string) []int32 {
	t.Helper()
	a, err := data.ReadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.Int32s()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return x
}

// TestPredictFeatures: new examples' raw features, one file per view, give the logits the
// run's probes give on the same rows of its own (imported, standardised) test split; a
// run of MPL's two probes on one view reads the one file twice. Files that do not fit the
// run are one line naming the file or the view.
func TestPredictFeatures(t *testing.T) {
	dir, views, raw := synthImport(t, 3, 5)
	mct := tinyRun(t, "mct", dir, views[:2], 1)
	mpl := tinyRun(t, "mpl", dir, views[1:2], 1)
	for _, cfg := range []Config{mct, mpl} {
		cfg.WarmupEpochs, cfg.Epochs = 3, 1
		if _, err := Run(context.Background(), cfg, io.Discard); err != nil {
			t.Fatal(err)
		}
		own, err := Predict(cfg.Out, "", "")
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		for _, v := range cfg.Views {
			files[v] = raw.views[v][1]
		}
		got, err := PredictFeatures(cfg.Out, files)
		if err != nil {
			t.Fatal(err)
		}
		if got.Labels != nil || got.Classes != own.Classes || !slices.Equal(got.Views, own.Views) {
			t.Fatalf("%s: predictions for views %v, %d classes, labels %v; the run's own: %v, %d", cfg.Algo, got.Views, got.Classes, got.Labels, own.Views, own.Classes)
		}
		for i, v := range own.Views {
			worst := logitsDiff(got.Logits[i], own.Logits[i])
			t.Logf("%s probe %s: largest difference %.2g", cfg.Algo, v, worst)
			if len(got.Logits[i]) != len(own.Logits[i]) || worst > 1e-5 {
				t.Errorf("%s probe %s: %d logits differing by %.3g from the run's own %d", cfg.Algo, v, len(got.Logits[i]), worst, len(own.Logits[i]))
			}
		}
		if !slices.Equal(got.Ensemble(), own.Ensemble()) {
			t.Errorf("%s: ensemble classes differ from the run's own", cfg.Algo)
		}
	}

	short := filepath.Join(t.TempDir(), "short.npy")
	writeNPY(t, filepath.Dir(short), "short.npy", data.NewFloat32([]int{3, 9}, make([]float32, 27)))
	for _, tc := range []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"v0": raw.views["v0"][1]}, "no file for view v1: give --features v1=FILE.npy for each of the run's views (v0, v1)"},
		{map[string]string{"v0": raw.views["v0"][1], "v1": raw.views["v1"][1], "v2": raw.views["v2"][1]}, "has no view v2 (its views: v0, v1)"},
		{map[string]string{"v0": raw.views["v0"][1], "v1": short}, "short.npy: 3 rows, but " + raw.views["v0"][1] + " has 120"},
		{map[string]string{"v0": raw.views["v1"][1], "v1": raw.views["v1"][1]}, "v1-test.npy: 9 features per row, the probe of view v0 takes 6"},
	} {
		if _, err := PredictFeatures(mct.Out, tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.files, err, tc.want)
		}
	}
}

// TestProbabilities: the softmax of the views' summed logits, finite for logits far beyond
// exp's range, each row's argmax the ensemble's class.
func TestProbabilities(t *testing.T) {
	p := &Predictions{Views: []string{"a", "b"}, Classes: 3, Logits: [][]float32{
		{1, 2, 3, 1000, -1000, 0},
		{0, 0, -1, 1, 0, 999},
	}}
	// Row 0: sums (1, 2, 2) → e^-1, 1, 1 over 2+e^-1. Row 1: sums (1001, -1000, 999).
	e1, e2 := math.Exp(-1), math.Exp(-2)
	want := []float64{e1 / (2 + e1), 1 / (2 + e1), 1 / (2 + e1), 1 / (1 + e2), 0, e2 / (1 + e2)}
	got := p.Probabilities()
	for k := range want {
		if math.Abs(float64(got[k])-want[k]) > 1e-6 {
			t.Fatalf("probabilities %v, want %v", got, want)
		}
	}
	if e := p.Ensemble(); !slices.Equal(e, []int32{1, 0}) {
		t.Errorf("ensemble %v, want [1 0] (the first of equal sums)", e)
	}

	// Logits near float32's largest value sum to +Inf: those classes share, none is NaN.
	const big = 3e38
	p = &Predictions{Views: []string{"a", "b"}, Classes: 3, Logits: [][]float32{
		{big, 0, big, -big, big, 0},
		{big, 5, big, -big, 0, 0},
	}}
	want = []float64{0.5, 0, 0.5, 0, 1, 0}
	got = p.Probabilities()
	for k := range want {
		if got[k] != float32(want[k]) {
			t.Fatalf("probabilities of logits that sum beyond float32: %v, want %v", got, want)
		}
	}
}

// TestDataDir: summary.json's data_dir is the absolute dataset directory, and empty for a
// built-in dataset even where the working directory has a directory of its name (eval and
// predict would open that directory instead of the built-in, and find no manifest.json).
func TestDataDir(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("fashion-mnist", 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(t.TempDir(), "fashion-mnist-0123456789abcdef-v2")
	if got := dataDir("fashion-mnist", &data.Dataset{Dir: cache}); got != "" {
		t.Errorf("a built-in beside a directory of its name: data_dir %q, want none", got)
	}
	wd, _ := os.Getwd()
	if got, want := dataDir("ds", &data.Dataset{Dir: "ds"}), filepath.Join(wd, "ds"); got != want {
		t.Errorf("dataset directory ds: data_dir %q, want %q", got, want)
	}
}

// TestPredictFromElsewhere: a run trained on a dataset directory given relative to where
// it ran is evaluated from any directory (summary.json's data_dir), and a model file whose
// parameters are not the ones the run recorded is refused by name.
func TestPredictFromElsewhere(t *testing.T) {
	dir, views, _ := synthImport(t, 1, 0)
	t.Chdir(filepath.Dir(dir))
	cfg := tinyRun(t, "mct", filepath.Base(dir), views[:2], 1)
	cfg.WarmupEpochs, cfg.Epochs = 3, 1
	sum, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if sum.DataDir != dir {
		t.Fatalf("summary data_dir %q, want %q", sum.DataDir, dir)
	}
	t.Chdir(t.TempDir())
	p, err := Predict(cfg.Out, "", "")
	if err != nil {
		t.Fatalf("predict from another directory: %v", err)
	}
	if acc := p.Accuracy().Ensemble; acc != sum.TestAccuracy.Ensemble {
		t.Errorf("predicted ensemble accuracy %v, the run's %v", acc, sum.TestAccuracy.Ensemble)
	}
	// The project moved, its dataset directory with it: data_dir is gone, config.data
	// (relative) is found from the new place, as before data_dir.
	moved := t.TempDir()
	if err := os.Rename(dir, filepath.Join(moved, filepath.Base(dir))); err != nil {
		t.Fatal(err)
	}
	t.Chdir(moved)
	if p, err := Predict(cfg.Out, "", ""); err != nil || p.Accuracy().Ensemble != sum.TestAccuracy.Ensemble {
		t.Errorf("predict once the data moved: %v", err)
	}

	path := ModelPath(cfg.Out, views[1])
	ts, meta, err := ckpt.ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	ts[0].Data[0] += 1e-3 // one weight
	if err := ckpt.WriteSafetensors(path, ts, meta); err != nil {
		t.Fatal(err)
	}
	want := path + ": its parameters are not those summary.json's param_checksum records for " + views[1]
	if _, err := Predict(cfg.Out, "", ""); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a changed model file: error %v, want %q", err, want)
	}
}
