package sweep

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
	writeJSONSummary(t, dir, s)
}

func writeJSONSummary(t *testing.T, dir string, s map[string]any) {
	t.Helper()
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

// writeSharedSummary writes dir/summary.json for a run whose test (and, when
// warmup is not nil, warmup test) accuracy reports the shared errors given;
// nil test shared errors leave the field out, as older trainers did.
func writeSharedSummary(t *testing.T, dir, algo string, views []string, frac float64, seed int64, test, warmup []SharedErrors) {
	t.Helper()
	per := map[string]float64{}
	for _, v := range views {
		per[v] = 0.8
	}
	acc := func(shared []SharedErrors) map[string]any {
		a := map[string]any{"ensemble": 0.85, "per_view": per}
		if shared != nil {
			a["shared_errors"] = shared
		}
		return a
	}
	s := map[string]any{"algo": algo, "views": views, "labeled_fraction": frac, "seed": seed, "test_accuracy": acc(test)}
	if warmup != nil {
		s["warmup_test_accuracy"] = acc(warmup)
	}
	writeJSONSummary(t, dir, s)
}

// sharedFixture is runs of five configurations: mct over two seeds with
// warmup, supervised without a warmup, a three-view run whose summary lists
// one pair in the other order, cotrain where one of two seeds predates shared
// errors, and a one-view run, which has no pair.
func sharedFixture(t *testing.T) []string {
	root := t.TempDir()
	hg := []string{"hog", "gabor"}
	var dirs []string
	add := func(name, algo string, views []string, seed int64, test, warmup []SharedErrors) {
		d := filepath.Join(root, name)
		writeSharedSummary(t, d, algo, views, 0.1, seed, test, warmup)
		dirs = append(dirs, d)
	}
	add("m1", "mct", hg, 1, []SharedErrors{{"hog", "gabor", 0.115, 0.0205, 0.09}}, []SharedErrors{{"hog", "gabor", 0.14, 0.03, 0.1}})
	add("m2", "mct", hg, 2, []SharedErrors{{"hog", "gabor", 0.125, 0.0215, 0.10}}, []SharedErrors{{"hog", "gabor", 0.15, 0.03, 0.1}})
	add("s1", "supervised", hg, 1, []SharedErrors{{"hog", "gabor", 0.2, 0.05, 0.125}}, nil)
	add("t1", "mct", []string{"hog", "gabor", "raw"}, 1, []SharedErrors{
		{"hog", "gabor", 0.1, 0.02, 0.05}, {"raw", "hog", 0.0625, 0.04, 0.03}, {"gabor", "raw", 0.075, 0.035, 0.04},
	}, nil)
	add("c1", "cotrain", hg, 1, []SharedErrors{{"hog", "gabor", 0.13, 0.025, 0.11}}, []SharedErrors{{"hog", "gabor", 0.16, 0.03, 0.1}})
	add("c2", "cotrain", hg, 2, nil, nil)
	add("o1", "supervised", []string{"hog"}, 1, nil, nil)
	return dirs
}

func TestReportSharedErrors(t *testing.T) {
	md, _, err := Report(sharedFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	want := `| algo | views | labeled | seeds | test acc. ensemble (%) | test acc. per view (%) |
| --- | --- | ---: | --- | ---: | --- |
| supervised | hog | 0.1 | 1 (1) | 85.00 | hog 80.00 |
| supervised | hog+gabor | 0.1 | 1 (1) | 85.00 | hog 80.00, gabor 80.00 |
| cotrain | hog+gabor | 0.1 | 2 (1,2) | 85.00 ± 0.00 | hog 80.00 ± 0.00, gabor 80.00 ± 0.00 |
| mct | hog+gabor | 0.1 | 2 (1,2) | 85.00 ± 0.00 | hog 80.00 ± 0.00, gabor 80.00 ± 0.00 |
| mct | hog+gabor+raw | 0.1 | 1 (1) | 85.00 | hog 80.00, gabor 80.00, raw 80.00 |

Shared errors on test, per pair of views (mean ± std over seeds, - where no run reports it):
% of the test examples both get wrong, that % if their errors were independent,
and % both get wrong with the same class; after warmup: both wrong after the warmup.

| algo | views | labeled | pair | both wrong | if independent | same class | after warmup |
| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |
| supervised | hog+gabor | 0.1 | hog+gabor | 20.00 | 5.00 | 12.50 | - |
| cotrain | hog+gabor | 0.1 | hog+gabor (1 of 2 runs) | 13.00 | 2.50 | 11.00 | 16.00 |
| mct | hog+gabor | 0.1 | hog+gabor | 12.00 ± 0.71 | 2.10 ± 0.07 | 9.50 ± 0.71 | 14.50 ± 0.71 |
| mct | hog+gabor+raw | 0.1 | hog+gabor | 10.00 | 2.00 | 5.00 | - |
|  |  |  | hog+raw | 6.25 | 4.00 | 3.00 | - |
|  |  |  | gabor+raw | 7.50 | 3.50 | 4.00 | - |
`
	if md != want {
		t.Errorf("report\n got:\n%s\nwant:\n%s", md, want)
	}
}

// TestReportSharedErrorsWithoutWarmup: no warmup column when no run has a
// warmup, a pair shown in the run's view order whatever order its summary
// lists it in, and one-line errors for bad shared errors.
func TestReportSharedErrorsWithoutWarmup(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "s")
	writeSharedSummary(t, d, "supervised", []string{"hog", "gabor"}, 0.5, 7, []SharedErrors{{"gabor", "hog", 0.0115, 0.000205, 0.01}}, nil)
	md, _, err := Report([]string{d})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(md, "\n")
	want := []string{
		"| algo | views | labeled | pair | both wrong | if independent | same class |",
		"| --- | --- | ---: | --- | ---: | ---: | ---: |",
		"| supervised | hog+gabor | 0.5 | hog+gabor | 1.15 | 0.02 | 1.00 |",
		"",
	}
	if len(lines) < len(want) || !reflect.DeepEqual(lines[len(lines)-len(want):], want) {
		t.Errorf("report:\n%s", md)
	}
	if strings.Contains(md, "warmup") {
		t.Errorf("report of a run without warmup mentions it:\n%s", md)
	}

	writeSharedSummary(t, d, "mct", []string{"hog", "gabor"}, 0.5, 7, []SharedErrors{{"hog", "raw", 0.1, 0.01, 0.1}}, nil)
	if _, _, err := Report([]string{d}); err == nil || !strings.Contains(err.Error(),
		`field test_accuracy.shared_errors[0]: views "hog" and "raw", want two different views of the run`) {
		t.Errorf("unknown view: %v", err)
	}
	writeSharedSummary(t, d, "mct", []string{"hog", "gabor"}, 0.5, 7, nil, []SharedErrors{{"hog", "gabor", 1.5, 0.01, 0.1}})
	if _, _, err := Report([]string{d}); err == nil || !strings.Contains(err.Error(),
		"field warmup_test_accuracy.shared_errors[0].both_wrong: 1.5, want a fraction in [0, 1]") {
		t.Errorf("fraction out of range: %v", err)
	}
}

// readResults reads the finished runs in dirs.
func readResults(t *testing.T, dirs []string) []Result {
	t.Helper()
	var runs []Result
	for _, d := range dirs {
		r, err := ReadResult(d)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	return runs
}

// csvRecords parses what write writes (WriteCSV or WriteRunsCSV).
func csvRecords(t *testing.T, write func(io.Writer) error) [][]string {
	t.Helper()
	var b strings.Builder
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestCSVSharedErrors(t *testing.T) {
	tab := Tabulate(readResults(t, sharedFixture(t)))
	recs := csvRecords(t, tab.WriteCSV)
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	// Columns are per pair named in sorted order, whatever order a run lists it in.
	pairs := []string{"gabor+hog", "gabor+raw", "hog+raw"}
	for _, p := range pairs {
		for _, f := range []string{"test_both_wrong_%s_mean", "test_if_independent_%s_std", "test_same_wrong_class_%s_mean", "warmup_test_both_wrong_%s_std", "test_shared_errors_%s_runs"} {
			if _, ok := col[strings.Replace(f, "%s", p, 1)]; !ok {
				t.Errorf("results.csv has no column %s: %q", strings.Replace(f, "%s", p, 1), recs[0])
			}
		}
	}
	if len(recs[0]) != 7+2*3+3*9 {
		t.Errorf("results.csv has %d columns, want %d: %q", len(recs[0]), 7+2*3+3*9, recs[0])
	}
	// Rows follow the Markdown table: supervised hog, supervised hog+gabor,
	// cotrain, mct hog+gabor, mct hog+gabor+raw.
	checkCells(t, "results.csv", recs, []cellWant{
		{1, "test_both_wrong_gabor+hog_mean", ""},
		{1, "test_shared_errors_gabor+hog_runs", ""},
		{2, "test_both_wrong_gabor+hog_mean", "0.2"},
		{2, "warmup_test_both_wrong_gabor+hog_mean", ""},
		{3, "test_shared_errors_gabor+hog_runs", "1"},
		{3, "warmup_test_both_wrong_gabor+hog_mean", "0.16"},
		{4, "test_both_wrong_gabor+hog_mean", "0.12"},
		{4, "test_both_wrong_gabor+hog_std", "0.007071067812"},
		{4, "test_if_independent_gabor+hog_mean", "0.021"},
		{4, "test_same_wrong_class_gabor+hog_mean", "0.095"},
		{4, "warmup_test_both_wrong_gabor+hog_mean", "0.145"},
		{4, "test_shared_errors_gabor+hog_runs", "2"},
		{4, "test_both_wrong_hog+raw_mean", ""},
		{5, "test_both_wrong_hog+raw_mean", "0.0625"},
		{5, "test_if_independent_gabor+raw_mean", "0.035"},
	})
	// Run rows: o1, s1, c1, c2, m1, m2, t1.
	checkCells(t, "runs.csv", csvRecords(t, tab.WriteRunsCSV), []cellWant{
		{3, "test_both_wrong_gabor+hog", "0.13"},
		{3, "warmup_test_both_wrong_gabor+hog", "0.16"},
		{4, "test_both_wrong_gabor+hog", ""},
		{6, "test_if_independent_gabor+hog", "0.0215"},
		{6, "test_same_wrong_class_gabor+hog", "0.1"},
		{7, "test_both_wrong_hog+raw", "0.0625"},
	})
}

// cellWant is one cell of a CSV table: its row (1: the first under the header), the
// name of its column and its text.
type cellWant struct {
	row        int
	name, want string
}

// checkCells compares cells of recs (a header, then rows) found by column name.
func checkCells(t *testing.T, file string, recs [][]string, cells []cellWant) {
	t.Helper()
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, c := range cells {
		i, ok := col[c.name]
		if !ok {
			t.Errorf("%s has no column %s: %q", file, c.name, recs[0])
			continue
		}
		if got := recs[c.row][i]; got != c.want {
			t.Errorf("%s row %d %s = %q, want %q", file, c.row, c.name, got, c.want)
		}
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
	md, _, err := Report(append(dirs, dirs[0]))
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
	if _, _, err := Report([]string{bad}); err == nil || !strings.Contains(err.Error(), "field test_accuracy.ensemble: 1.5, want an accuracy in [0, 1]") {
		t.Errorf("accuracy out of range: %v", err)
	}
	// Paths without summary.json are skipped (mct report runs/* beside an unfinished run or
	// a file); with nothing left, that is the error.
	none, file := filepath.Join(root, "none"), filepath.Join(root, "pred.npy")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, skipped, err := Report([]string{none, file}); err == nil || !strings.Contains(err.Error(), "no finished run (a directory with summary.json) among "+none+" "+file) || len(skipped) != 2 {
		t.Errorf("no summary at all: %v, skipped %v", err, skipped)
	}
	good := filepath.Join(root, "good")
	writeSummary(t, good, "mct", 0.01, 1, 0.8, 0.7, 0.75, nil)
	if md, skipped, err := Report([]string{none, good, file}); err != nil || !slices.Equal(skipped, []string{none, file}) || !strings.Contains(md, "| mct |") {
		t.Errorf("a run beside two paths without summary: %v, skipped %v\n%s", err, skipped, md)
	}
	miss := filepath.Join(root, "miss")
	if err := os.MkdirAll(miss, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(miss, SummaryFile), []byte(`{"algo":"mct","views":["hog","gabor"],"labeled_fraction":0.1,
		"test_accuracy":{"ensemble":0.5,"per_view":{"hog":0.5}}}`), 0o644)
	if _, _, err := Report([]string{miss}); err == nil || !strings.Contains(err.Error(), `field test_accuracy.per_view: no accuracy for view "gabor"`) {
		t.Errorf("missing view: %v", err)
	}
	if _, _, err := Report(nil); err == nil {
		t.Error("no directories: no error")
	}
}

func TestCSV(t *testing.T) {
	root := t.TempDir()
	var dirs []string
	for i, ens := range []float64{0.6, 0.7} {
		d := filepath.Join(root, string(rune('a'+i)))
		writeSummary(t, d, "cotrain", 0.05, int64(i+1), ens, ens, ens, nil)
		dirs = append(dirs, d)
	}
	tab := Tabulate(readResults(t, dirs))
	recs := csvRecords(t, tab.WriteCSV)
	head := strings.Join(recs[0], ",")
	if head != "algo,views,labeled_fraction,runs,seeds,test_ensemble_mean,test_ensemble_std,test_gabor_mean,test_gabor_std,test_hog_mean,test_hog_std" {
		t.Errorf("header %s", head)
	}
	want := []string{"cotrain", "hog+gabor", "0.05", "2", "1,2", "0.65", "0.07071067812", "0.65", "0.07071067812", "0.65", "0.07071067812"}
	if !reflect.DeepEqual(recs[1], want) {
		t.Errorf("row\n got %q\nwant %q", recs[1], want)
	}
	if recs = csvRecords(t, tab.WriteRunsCSV); len(recs) != 3 || recs[2][5] != "0.7" || recs[2][4] != "2" {
		t.Errorf("runs.csv %q", recs)
	}
}

// TestPlotOneFraction: a sweep over one labeled fraction gets an axis around it (gonum
// plot drew a degenerate [0.01, 0.01] axis, labelled from -0.8 to 0.8).
func TestPlotOneFraction(t *testing.T) {
	var runs []Result
	for seed := range int64(2) {
		d := filepath.Join(t.TempDir(), "r")
		writeSummary(t, d, "mct", 0.01, seed+1, 0.8, 0.7, 0.75, nil)
		r, err := ReadResult(d)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	p, err := Tabulate(runs).plot()
	if err != nil {
		t.Fatal(err)
	}
	if !(p.X.Min > 0 && p.X.Min < 0.01 && p.X.Max > 0.01 && p.X.Max <= 0.02) {
		t.Errorf("x axis [%g, %g] for the one fraction 0.01", p.X.Min, p.X.Max)
	}
}
