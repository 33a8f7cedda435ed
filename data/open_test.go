package data

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenFashionMNIST builds a HOG view of the real Fashion-MNIST into an
// empty cache, checks it, and opens it again from the cache. It uses 7-pixel
// cells (324 values) rather than the default 1296 to keep the test's disk traffic small.
func TestOpenFashionMNIST(t *testing.T) {
	fashionMNISTDir(t)
	cache := t.TempDir()
	var stages []string
	opt := Options{CacheDir: cache, Progress: func(stage string, done, total int) {
		if done == total {
			stages = append(stages, stage)
		}
	}}
	d, err := Open("fashion-mnist", []string{"hog:cell=7"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "fashion-mnist" || d.Classes != 10 || d.ClassNames[9] != "Ankle boot" || len(d.TrainLabels) != 60000 || len(d.TestLabels) != 10000 {
		t.Fatalf("dataset %s classes %d train %d test %d", d.Name, d.Classes, len(d.TrainLabels), len(d.TestLabels))
	}
	if len(stages) != 1 || stages[0] != "build hog:cell=7" {
		t.Errorf("progress stages %v, want [build hog:cell=7]", stages)
	}
	v := d.View("hog:cell=7")
	if v == nil || v.Params["cell"] != float64(7) {
		t.Fatalf("view hog:cell=7 missing or params %v", v)
	}
	if v.Dim != 324 || len(v.Train) != 60000*324 || len(v.Test) != 10000*324 {
		t.Fatalf("hog dim %d sizes %d %d", v.Dim, len(v.Train), len(v.Test))
	}
	// Standardised on train: column means 0 and standard deviations 1 (or a constant column).
	for _, j := range []int{0, 100, 323} {
		var s, s2 float64
		for i := 0; i < 60000; i++ {
			x := float64(v.Train[i*324+j])
			s += x
			s2 += x * x
		}
		if mean, sd := s/60000, math.Sqrt(s2/60000-(s/60000)*(s/60000)); math.Abs(mean) > 1e-4 || math.Abs(sd-1) > 1e-3 {
			t.Errorf("column %d: mean %g std %g after standardising", j, mean, sd)
		}
	}
	// Undoing the standardisation gives L2-Hys-normalised blocks: every 36-value block has unit norm.
	var norm float64
	for j := 0; j < 36; j++ {
		x := float64(v.Train[j]*v.Std[j] + v.Mean[j])
		norm += x * x
	}
	if math.Abs(norm-1) > 1e-3 {
		t.Errorf("first HOG block of image 0 has squared norm %g, want 1", norm)
	}
	entries, _ := os.ReadDir(cache)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "fashion-mnist-") {
		t.Fatalf("cache holds %v", entries)
	}
	stages = nil
	again, err := Open("fashion-mnist", []string{"hog:cell=7"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 0 {
		t.Errorf("second Open rebuilt: %v", stages)
	}
	if w := again.View("hog:cell=7"); w.Train[12345] != v.Train[12345] || w.Test[9999] != v.Test[9999] {
		t.Error("cached view differs from the built one")
	}
	// Build combines cached views into one directory; a tiny test family keeps the copy cheap.
	out := filepath.Join(t.TempDir(), "fm")
	if err := Build("fashion-mnist", []string{"hog:cell=7", "test-mean"}, out, Options{CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	fromDir, err := Open(out, []string{"test-mean"}, Options{})
	if err != nil || fromDir.TestLabels[0] != 9 || len(fromDir.Views) != 1 {
		t.Fatalf("Open(dir) after Build: %v", err)
	}
	if m := fromDir.View("test-mean"); len(m.Train) != 60000 || m.Params["what"] != "mean pixel" {
		t.Fatalf("test-mean view: %d rows, params %v", len(m.Train), m.Params)
	}
	if _, err := os.Stat(filepath.Join(out, "hog_cell_7-train.npy")); err != nil {
		t.Errorf("Build did not write the hog matrix: %v", err)
	}
	desc, err := Describe(out)
	if err != nil || !strings.Contains(desc, "hog:cell=7 ") || !strings.Contains(desc, "dim   324") || !strings.Contains(desc, "train 60000 rows, test 10000 rows") {
		t.Errorf("Describe:\n%s%v", desc, err)
	}
	if _, err := Open("fashion-mnist", []string{"hog:cell=x"}, opt); err == nil || !strings.Contains(err.Error(), `view "hog:cell=x": cell=x: want an integer`) {
		t.Errorf("bad spec: %v", err)
	}
	// An unknown family beside a known one: refused before anything is built or locked.
	fresh := Options{CacheDir: t.TempDir()}
	if _, err := Open("fashion-mnist", []string{"lbp", "sift"}, fresh); err == nil || !strings.Contains(err.Error(), `unknown family "sift"`) {
		t.Errorf("unknown family: %v", err)
	}
	if left, _ := os.ReadDir(fresh.CacheDir); len(left) > 0 {
		t.Errorf("an unknown family left %s in the cache (the other view built, or a lock file)", left[0].Name())
	}
	if _, err := Open("no-such-thing", nil, opt); err == nil || !strings.Contains(err.Error(), "neither a built-in") {
		t.Errorf("unknown dataset: %v", err)
	}
}

func init() {
	// test-mean is one column, the mean pixel: enough to exercise Build and the cache cheaply.
	RegisterFamily(FamilyInfo{Name: "test-mean", About: "the mean pixel (1 values on 28×28)"}, func(_ context.Context, args string, im Images, progress func(done, total int)) (Features, error) {
		out := make([]float32, im.N)
		for i := range out {
			s := 0
			for _, p := range im.Image(i) {
				s += int(p)
			}
			out[i] = float32(s) / float32(im.H*im.W)
		}
		return Features{Dim: 1, Data: out, Params: map[string]any{"what": "mean pixel"}}, nil
	})
}

func TestMNISTFiles(t *testing.T) {
	b := builtins["mnist"]
	dir, err := b.locate()
	if err != nil {
		skipUnlessCI(t, err)
	}
	raw, err := loadRaw(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	// The official MNIST: 60000 + 10000 images of 28×28, first test label 7, first train label 5.
	if raw.train.N != 60000 || raw.test.N != 10000 || raw.train.H != 28 || raw.testLabel[0] != 7 || raw.trainLabels[0] != 5 {
		t.Fatalf("mnist: %d/%d images %d×%d, labels %d %d", raw.train.N, raw.test.N, raw.train.H, raw.train.W, raw.trainLabels[0], raw.testLabel[0])
	}
}

func TestLocateErrors(t *testing.T) {
	t.Setenv("MCT_FASHION_MNIST_DIR", t.TempDir())
	if _, err := Open("fashion-mnist", nil, Options{CacheDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "MCT_FASHION_MNIST_DIR") {
		t.Errorf("missing fashion files: %v", err)
	}
	t.Setenv("MCT_MNIST_DIR", "")
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOPATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	if _, err := locateMNIST(); err == nil || !strings.Contains(err.Error(), "set MCT_MNIST_DIR") {
		t.Errorf("missing mnist: %v", err)
	}
}
