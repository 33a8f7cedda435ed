package train

import (
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mct/data"
)

// copiesDir imports one view three times over the same files: as "a", the view an MPL
// run trains on, and as "a#1" and "a#2", two views of an MCT run that hold the very same
// features under the names MPL gives its probes.
func copiesDir(t *testing.T) string {
	t.Helper()
	const classes, dim, nTrain, nTest = 3, 7, 500, 90
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	proto := make([]float64, classes*dim)
	for i := range proto {
		proto[i] = rng.NormFloat64()
	}
	var labels, feats [2]string
	for k, n := range []int{nTrain, nTest} {
		y, x := make([]int32, n), make([]float32, n*dim)
		for i := range y {
			y[i] = int32(rng.IntN(classes))
			for j := range dim {
				x[i*dim+j] = float32(proto[int(y[i])*dim+j] + 1.2*rng.NormFloat64())
			}
		}
		labels[k] = filepath.Join(src, "y"+string(rune('0'+k))+".npy")
		feats[k] = filepath.Join(src, "x"+string(rune('0'+k))+".npy")
		if err := data.WriteNPY(labels[k], data.NewInt64([]int{n}, y)); err != nil {
			t.Fatal(err)
		}
		if err := data.WriteNPY(feats[k], data.NewFloat32([]int{n, dim}, x)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "copies")
	if err := data.Import(map[string][2]string{"a": feats, "a#1": feats, "a#2": feats}, labels, classes, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestMPLIsMCTOnOneViewTwice: --algo mpl on view a is MCT with two probes that both read a,
// each seeded by its own name. An MCT run on two views that hold a's features under MPL's
// probe names must end bit for bit where the MPL run ends; and the two probes must differ
// (their own initial weights and pseudo-labels), else MPL would be one probe twice.
func TestMPLIsMCTOnOneViewTwice(t *testing.T) {
	dir := copiesDir(t)
	run := func(algo string, views ...string) *Summary {
		cfg := tinyRun(t, algo, dir, views, 3)
		cfg.WarmupEpochs, cfg.Patience, cfg.Epochs = 4, 2, 2
		s, err := Run(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatalf("--algo %s --views %s: %v", algo, strings.Join(views, ","), err)
		}
		if s.Updates == 0 {
			t.Fatalf("--algo %s: no MCT updates ran", algo)
		}
		return s
	}
	mpl, mct := run("mpl", "a"), run("mct", "a#1", "a#2")
	if want := []string{"a#1", "a#2"}; !slices.Equal(mpl.Views, want) {
		t.Fatalf("MPL's probes are %v, want %v", mpl.Views, want)
	}
	sameParams(t, "mpl --views a", mpl, "mct --views a#1,a#2", mct)
	if mpl.TestAccuracy.Ensemble != mct.TestAccuracy.Ensemble {
		t.Errorf("test ensemble: mpl %g, mct on the copies %g", mpl.TestAccuracy.Ensemble, mct.TestAccuracy.Ensemble)
	}
	if mpl.ParamChecksum["a#1"] == mpl.ParamChecksum["a#2"] {
		t.Errorf("MPL's two probes ended with the same parameters %s", mpl.ParamChecksum["a#1"])
	}
	// A finished MPL run is evaluated like any other: both probes on the one view.
	p, err := Predict(mpl.Config.Out, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Accuracy(); got.Ensemble != mpl.TestAccuracy.Ensemble || got.PerView["a#2"] != mpl.TestAccuracy.PerView["a#2"] {
		t.Errorf("mct eval of the MPL run: ensemble %g, a#2 %g; the run reported %g, %g",
			got.Ensemble, got.PerView["a#2"], mpl.TestAccuracy.Ensemble, mpl.TestAccuracy.PerView["a#2"])
	}
	t.Logf("%d updates, test ensemble %.3f (a#1 %.3f, a#2 %.3f)", mpl.Updates, mpl.TestAccuracy.Ensemble,
		mpl.TestAccuracy.PerView["a#1"], mpl.TestAccuracy.PerView["a#2"])
}

func TestMPLNeedsOneView(t *testing.T) {
	cfg := Defaults()
	cfg.Algo = "mpl"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "--algo mpl trains two probes on one view: give one --views, got 2 (hog,gabor)") {
		t.Errorf("--algo mpl with the default views: %v", err)
	}
	cfg.Views = []string{"hog"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("--algo mpl --views hog: %v", err)
	}
}
