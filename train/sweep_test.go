package train

import (
	"context"
	"io"
	"maps"
	"slices"
	"testing"

	"mct/sweep"
)

// TestSweepReadsSummary: the summary.json a run writes is read by sweep, whose Summary
// is a separate declaration of the same file (sweep does not link the trainer), field
// for field: a field renamed or retyped on one side only fails here.
func TestSweepReadsSummary(t *testing.T) {
	dir, all := synthDir(t)
	cfg := tinyRun(t, "mct", dir, all[:2], 3)
	cfg.WarmupEpochs, cfg.Patience, cfg.Epochs = 2, 1, 1
	s, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sweep.ReadResult(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Summary
	same := func(field string, a *sweep.Accuracy, b *Accuracies) {
		t.Helper()
		if a == nil || b == nil {
			if (a == nil) != (b == nil) {
				t.Errorf("%s: sweep read %v, the run wrote %v", field, a, b)
			}
			return
		}
		if a.Ensemble != b.Ensemble || !maps.Equal(a.PerView, b.PerView) {
			t.Errorf("%s: sweep read %+v, the run wrote %+v", field, *a, *b)
		}
	}
	if got.Algo != s.Algo || got.LabeledFraction != s.LabeledFraction || got.Seed != s.Seed ||
		got.Updates != int64(s.Updates) || got.WallSeconds != s.WallSeconds ||
		got.ExamplesPerSecondPerView != s.ExamplesPerSecondPerView ||
		!maps.Equal(got.ParamChecksum, s.ParamChecksum) || !slices.Equal(got.Views, s.Views) {
		t.Errorf("sweep read %+v, the run wrote %+v", got, *s)
	}
	if s.WarmupTestAccuracy == nil {
		t.Error("the run wrote no warmup accuracy: the check below would be empty")
	}
	same("test_accuracy", got.TestAccuracy, &s.TestAccuracy)
	same("val_accuracy", got.ValAccuracy, &s.ValAccuracy)
	same("warmup_test_accuracy", got.WarmupTestAccuracy, s.WarmupTestAccuracy)
	if r.Settings["seed"] != "3" {
		t.Errorf("sweep's settings from the run's config: seed %q, want 3 (%v)", r.Settings["seed"], r.Settings)
	}
}
