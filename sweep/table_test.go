package sweep

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeSummary writes dir/summary.json for a two-view run.
func writeSummary(t *testing.T, dir, algo string, frac float64, seed int64, ens, hog, gabor float64, config map[string]any) {
	t.Helper()
	acc := map[string]any{"ensemble": ens, "per_view": map[string]float64{"hog": hog, "gabor": gabor}}
	s := map[string]any{
		"algo": algo, "views": []string{"hog", "gabor"}, "labeled_fraction": frac, "seed": seed,
		"test_accuracy": acc, "val_accuracy": acc, "updates": 10, "wall_seconds": 1.5,
		"examples_per_second_per_view": 100.0, "param_checksum": map[string]string{"hog": "00", "gabor": "11"},
		"config": config,
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SummaryFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStat(t *testing.T) {
	s := stat([]float64{0.80, 0.82, 0.84})
	if s.N != 3 || math.Abs(s.Mean-0.82) > 1e-15 || math.Abs(s.Std-0.02) > 1e-15 {
		t.Errorf("stat = %+v, want mean 0.82, sample std 0.02", s)
	}
	if s := stat([]float64{0.5}); s.Mean != 0.5 || s.Std != 0 || s.N != 1 {
		t.Errorf("one value: %+v", s)
	}
}

func TestReportGroupsBySeedAndDistinguishesConfig(t *testing.T) {
	root := t.TempDir()
	var dirs []string
	add := func(name, algo string, frac float64, seed int64, ens float64, lr string) {
		d := filepath.Join(root, name)
		writeSummary(t, d, algo, frac, seed, ens, ens-0.01, ens-0.03,
			map[string]any{"lr": json.Number(lr), "seed": seed, "out": d, "model": map[string]any{"hidden": 64}})
		dirs = append(dirs, d)
	}
	// mct at lr 1e-4 over three seeds, mct at lr 1e-3 once, supervised twice.
	add("m1", "mct", 0.01, 1, 0.80, "1e-4")
	add("m2", "mct", 0.01, 2, 0.82, "1e-4")
	add("m3", "mct", 0.01, 3, 0.84, "1e-4")
	add("m4", "mct", 0.01, 1, 0.70, "1e-3")
	add("s1", "supervised", 0.01, 2, 0.75, "1e-4")
	add("s2", "supervised", 0.01, 1, 0.73, "1e-4")
	md, err := Report(append(dirs, dirs[0]))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(md), "\n")
	want := []string{
		"| algo | views | labeled | lr | seeds | test acc. ensemble (%) | test acc. per view (%) |",
		"| --- | --- | ---: | --- | --- | ---: | --- |",
		"| supervised | hog+gabor | 0.01 | 1e-4 | 2 (1,2) | 74.00 ± 1.41 | hog 73.00 ± 1.41, gabor 71.00 ± 1.41 |",
		"| mct | hog+gabor | 0.01 | 1e-3 | 1 (1) | 70.00 | hog 69.00, gabor 67.00 |",
		"| mct | hog+gabor | 0.01 | 1e-4 | 3 (1,2,3) | 82.00 ± 2.00 | hog 81.00 ± 2.00, gabor 79.00 ± 2.00 |",
	}
	if len(lines) != len(want) {
		t.Fatalf("report:\n%s", md)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
}

func TestReportErrors(t *testing.T) {
	root := t.TempDir()
	bad := filepath.Join(root, "bad")
	writeSummary(t, bad, "mct", 0.01, 1, 1.5, 0.5, 0.5, nil)
	if _, err := Report([]string{bad}); err == nil || !strings.Contains(err.Error(), "field test_accuracy.ensemble: 1.5, want an accuracy in [0, 1]") {
		t.Errorf("accuracy out of range: %v", err)
	}
	if _, err := Report([]string{filepath.Join(root, "none")}); err == nil || !strings.Contains(err.Error(), "finished run directory") {
		t.Errorf("missing summary: %v", err)
	}
	miss := filepath.Join(root, "miss")
	if err := os.MkdirAll(miss, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(miss, SummaryFile), []byte(`{"algo":"mct","views":["hog","gabor"],"labeled_fraction":0.1,
		"test_accuracy":{"ensemble":0.5,"per_view":{"hog":0.5}}}`), 0o644)
	if _, err := Report([]string{miss}); err == nil || !strings.Contains(err.Error(), `field test_accuracy.per_view: no accuracy for view "gabor"`) {
		t.Errorf("missing view: %v", err)
	}
	if _, err := Report(nil); err == nil {
		t.Error("no directories: no error")
	}
}

func TestCSV(t *testing.T) {
	root := t.TempDir()
	var runs []Result
	for i, ens := range []float64{0.6, 0.7} {
		d := filepath.Join(root, string(rune('a'+i)))
		writeSummary(t, d, "cotrain", 0.05, int64(i+1), ens, ens, ens, nil)
		r, err := ReadResult(d)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	tab := Tabulate(runs)
	var b strings.Builder
	if err := tab.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := strings.Join(recs[0], ",")
	if head != "algo,views,labeled_fraction,runs,seeds,test_ensemble_mean,test_ensemble_std,test_gabor_mean,test_gabor_std,test_hog_mean,test_hog_std" {
		t.Errorf("header %s", head)
	}
	want := []string{"cotrain", "hog+gabor", "0.05", "2", "1,2", "0.65", "0.07071067812", "0.65", "0.07071067812", "0.65", "0.07071067812"}
	if !reflect.DeepEqual(recs[1], want) {
		t.Errorf("row\n got %q\nwant %q", recs[1], want)
	}
	b.Reset()
	if err := tab.WriteRunsCSV(&b); err != nil {
		t.Fatal(err)
	}
	recs, err = csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil || len(recs) != 3 || recs[2][5] != "0.7" || recs[2][4] != "2" {
		t.Errorf("runs.csv %v %q", err, recs)
	}
}
