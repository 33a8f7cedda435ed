package data

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenFashionMNIST builds the hog view of the real Fashion-MNIST into an
// empty cache, checks it, and opens it again from the cache.
func TestOpenFashionMNIST(t *testing.T) {
	if _, err := locateFashionMNIST(); err != nil {
		t.Skip(err)
	}
	cache := t.TempDir()
	var stages []string
	opt := Options{CacheDir: cache, Progress: func(stage string, done, total int) {
		if done == total {
			stages = append(stages, stage)
		}
	}}
	d, err := Open("fashion-mnist", []string{"hog"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "fashion-mnist" || d.Classes != 10 || d.ClassNames[9] != "Ankle boot" || len(d.TrainLabels) != 60000 || len(d.TestLabels) != 10000 {
		t.Fatalf("dataset %s classes %d train %d test %d", d.Name, d.Classes, len(d.TrainLabels), len(d.TestLabels))
	}
	if len(stages) != 1 || stages[0] != "build hog" {
		t.Errorf("progress stages %v, want [build hog]", stages)
	}
	v := d.View("hog")
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
	again, err := Open("fashion-mnist", []string{"hog"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 0 {
		t.Errorf("second Open rebuilt: %v", stages)
	}
	if w := again.View("hog"); w.Train[12345] != v.Train[12345] || w.Test[9999] != v.Test[9999] {
		t.Error("cached view differs from the built one")
	}
	out := filepath.Join(t.TempDir(), "fm")
	if err := Build("fashion-mnist", []string{"hog"}, out, opt); err != nil {
		t.Fatal(err)
	}
	fromDir, err := Open(out, nil, Options{})
	if err != nil || fromDir.View("hog") == nil || fromDir.TestLabels[0] != 9 {
		t.Fatalf("Open(dir) after Build: %v", err)
	}
	if _, err := Open("fashion-mnist", []string{"hog:cell=x"}, opt); err == nil || !strings.Contains(err.Error(), `view "hog:cell=x": cell=x: want an integer`) {
		t.Errorf("bad spec: %v", err)
	}
	if _, err := Open("fashion-mnist", []string{"sift"}, opt); err == nil || !strings.Contains(err.Error(), `unknown family "sift"`) {
		t.Errorf("unknown family: %v", err)
	}
	if _, err := Open("no-such-thing", nil, opt); err == nil || !strings.Contains(err.Error(), "neither a built-in") {
		t.Errorf("unknown dataset: %v", err)
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
