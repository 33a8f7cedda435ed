package data

import (
	"context"
	"mct/internal/logreg"
	"os"
	"strings"
	"testing"
)

// TestProbeSmall checks every built-in family separates real Fashion-MNIST
// classes: 1000 train images (100 per class would be the full probe; here all
// 1000 are labeled) and 1000 test images, features standardised on those 1000.
// 60 L-BFGS iterations reach the accuracy of 300 to within 0.005 here.
// Thresholds sit well below the full-data numbers so noise cannot fail them;
// a broken feature (constant, scrambled, misaligned with labels) lands near 0.1.
func TestProbeSmall(t *testing.T) {
	raw := realFashionMNIST(t)
	const ntr, nte = 1000, 1000
	for _, tc := range []struct {
		spec string
		min  float64
	}{
		{"pixels", 0.70}, {"hog", 0.70}, {"gabor", 0.70}, {"randconv", 0.70}, {"lbp", 0.60},
	} {
		v, err := buildView(context.Background(), tc.spec, firstImages(raw.train, ntr), firstImages(raw.test, nte), nil)
		if err != nil {
			t.Fatal(err)
		}
		acc := logreg.Fit(v.Train, raw.trainLabels[:ntr], v.Dim, 10, 1.0/ntr, 60).Accuracy(v.Test, raw.testLabel[:nte])
		t.Logf("%-9s dim %4d  logistic probe accuracy %.3f (1000 train, 1000 test images)", tc.spec, v.Dim, acc)
		if acc < tc.min {
			t.Errorf("%s: accuracy %.3f below %.2f", tc.spec, acc, tc.min)
		}
	}
}

// TestProbeFull reproduces DESIGN.md's view table: a logistic probe on 1000
// balanced labels (seed 1) of the full train split, scored on the 10000 test
// images. It builds the views into the user's cache (slow the first time), so it
// only runs when asked:
//
//	MCT_PROBE=1 go test -run TestProbeFull -v ./data
//	MCT_PROBE=hog,gabor ...   (a subset of views)
func TestProbeFull(t *testing.T) {
	which := os.Getenv("MCT_PROBE")
	if which == "" {
		t.Skip("set MCT_PROBE=1 (or a comma-separated list of views) to run")
	}
	views := []string{"pixels", "hog", "gabor", "randconv", "lbp"}
	if which != "1" {
		views = strings.Split(which, ",")
	}
	d, err := Open("fashion-mnist", views, Options{Progress: func(stage string, done, total int) {
		if done == total {
			t.Logf("%s: done", stage)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := MakeSplit(d.TrainLabels, d.Classes, 1000.0/60000, 0, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	y := make([]int32, len(s.Labeled))
	GatherLabels(y, d.TrainLabels, s.Labeled)
	for _, v := range d.Views {
		x := make([]float32, len(s.Labeled)*v.Dim)
		Gather(x, v.Train, v.Dim, s.Labeled)
		acc := logreg.Fit(x, y, v.Dim, d.Classes, 1.0/1000, 300).Accuracy(v.Test, d.TestLabels)
		t.Logf("%-24s dim %5d  logistic probe accuracy %.4f (1000 labels, 10000 test)", v.Name, v.Dim, acc)
	}
}
