package sweep

import (
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Stat is the mean and sample standard deviation of N values (Std is 0 for
// N = 1, where it is undefined and tables leave it out).
type Stat struct {
	Mean, Std float64
	N         int
}

func stat(xs []float64) Stat {
	s := Stat{N: len(xs)}
	if s.N == 0 {
		return s
	}
	for _, x := range xs {
		s.Mean += x
	}
	s.Mean /= float64(s.N)
	if s.N > 1 {
		var ss float64
		for _, x := range xs {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.Std = math.Sqrt(ss / float64(s.N-1))
	}
	return s
}

// Group is the runs of one configuration that differ only by seed.
type Group struct {
	Algo            string
	Views           []string
	LabeledFraction float64
	// Extra holds the values of Table.Keys for this group ("" where a run
	// does not have the setting).
	Extra []string
	Runs  []Result
	// Test is the ensemble's test accuracy over the runs; TestPerView the
	// views'.
	Test        Stat
	TestPerView map[string]Stat
}

// Seeds lists the seeds of the group's runs, in run order.
func (g Group) Seeds() []uint64 {
	seeds := make([]uint64, len(g.Runs))
	for i, r := range g.Runs {
		seeds[i] = r.Summary.Seed
	}
	return seeds
}

// Table is finished runs grouped by configuration.
type Table struct {
	// Keys are the settings, beyond algo, views and labeled fraction, whose
	// values differ between the runs (e.g. lr in a learning-rate sweep).
	Keys   []string
	Groups []Group
	// Views is every view name that occurs, sorted.
	Views []string
}

// Tabulate groups runs that differ only by seed and summarises each group.
func Tabulate(runs []Result) Table {
	t := Table{Keys: distinguishing(runs)}
	index := map[string]int{}
	views := map[string]bool{}
	for _, r := range runs {
		s := r.Summary
		extra := make([]string, len(t.Keys))
		for i, k := range t.Keys {
			extra[i] = r.Settings[k]
		}
		id := strings.Join(append([]string{s.Algo, strings.Join(s.Views, ","), strconv.FormatFloat(s.LabeledFraction, 'g', -1, 64)}, extra...), "\x00")
		i, ok := index[id]
		if !ok {
			i = len(t.Groups)
			index[id] = i
			t.Groups = append(t.Groups, Group{Algo: s.Algo, Views: s.Views, LabeledFraction: s.LabeledFraction, Extra: extra})
		}
		t.Groups[i].Runs = append(t.Groups[i].Runs, r)
		for _, v := range s.Views {
			views[v] = true
		}
	}
	t.Views = slices.Sorted(maps.Keys(views))
	for i := range t.Groups {
		g := &t.Groups[i]
		sort.SliceStable(g.Runs, func(a, b int) bool { return g.Runs[a].Summary.Seed < g.Runs[b].Summary.Seed })
		ens := make([]float64, len(g.Runs))
		for j, r := range g.Runs {
			ens[j] = r.Summary.TestAccuracy.Ensemble
		}
		g.Test = stat(ens)
		g.TestPerView = map[string]Stat{}
		for _, v := range g.Views {
			xs := make([]float64, len(g.Runs))
			for j, r := range g.Runs {
				xs[j] = r.Summary.TestAccuracy.PerView[v]
			}
			g.TestPerView[v] = stat(xs)
		}
	}
	sort.SliceStable(t.Groups, func(a, b int) bool { return lessGroup(t.Groups[a], t.Groups[b]) })
	return t
}

// algoOrder puts baselines before the method they are compared with.
var algoOrder = map[string]int{"supervised": 0, "cotrain": 1, "mct": 2}

func algoRank(a string) int {
	if r, ok := algoOrder[a]; ok {
		return r
	}
	return len(algoOrder)
}

// series identifies a line of the plot: everything but the labeled fraction.
func (g Group) series() string {
	return strings.Join(append([]string{g.Algo, strings.Join(g.Views, "+")}, g.Extra...), " ")
}

func lessGroup(a, b Group) bool {
	if ra, rb := algoRank(a.Algo), algoRank(b.Algo); ra != rb {
		return ra < rb
	}
	if sa, sb := a.series(), b.series(); sa != sb {
		return sa < sb
	}
	return a.LabeledFraction < b.LabeledFraction
}

func pct(s Stat) string {
	if s.N < 2 {
		return fmt.Sprintf("%.2f", 100*s.Mean)
	}
	return fmt.Sprintf("%.2f ± %.2f", 100*s.Mean, 100*s.Std)
}

func fracText(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func seedsText(g Group) string {
	parts := make([]string, len(g.Runs))
	for i, s := range g.Seeds() {
		parts[i] = strconv.FormatUint(s, 10)
	}
	return strings.Join(parts, ",")
}

// Markdown renders the table: one row per configuration, test accuracy in
// percent as mean ± sample standard deviation over its seeds.
func (t Table) Markdown() string {
	var b strings.Builder
	head := append([]string{"algo", "views", "labeled"}, t.Keys...)
	head = append(head, "seeds", "test acc. ensemble (%)", "test acc. per view (%)")
	align := make([]string, len(head))
	for i := range align {
		align[i] = "---"
	}
	align[2] = "---:"
	align[len(align)-2] = "---:"
	row := func(cells []string) {
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	row(head)
	row(align)
	for _, g := range t.Groups {
		per := make([]string, len(g.Views))
		for i, v := range g.Views {
			per[i] = v + " " + pct(g.TestPerView[v])
		}
		cells := append([]string{g.Algo, strings.Join(g.Views, "+"), fracText(g.LabeledFraction)}, g.Extra...)
		cells = append(cells, fmt.Sprintf("%d (%s)", len(g.Runs), seedsText(g)), pct(g.Test), strings.Join(per, ", "))
		row(cells)
	}
	return b.String()
}

// num prints 10 significant digits: more than any accuracy carries, and
// free of binary noise such as 0.47800000000000004.
func num(x float64) string { return strconv.FormatFloat(x, 'g', 10, 64) }

// WriteCSV writes the table with one row per configuration: mean, sample
// standard deviation (empty for one run) and count, accuracies as fractions.
func (t Table) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := append([]string{"algo", "views", "labeled_fraction"}, t.Keys...)
	head = append(head, "runs", "seeds", "test_ensemble_mean", "test_ensemble_std")
	for _, v := range t.Views {
		head = append(head, "test_"+v+"_mean", "test_"+v+"_std")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	std := func(s Stat) string {
		if s.N < 2 {
			return ""
		}
		return num(s.Std)
	}
	for _, g := range t.Groups {
		rec := append([]string{g.Algo, strings.Join(g.Views, "+"), fracText(g.LabeledFraction)}, g.Extra...)
		rec = append(rec, strconv.Itoa(len(g.Runs)), seedsText(g), num(g.Test.Mean), std(g.Test))
		for _, v := range t.Views {
			if s, ok := g.TestPerView[v]; ok {
				rec = append(rec, num(s.Mean), std(s))
			} else {
				rec = append(rec, "", "")
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteRunsCSV writes one row per run with everything its summary reports,
// for analyses the grouped table does not cover.
func (t Table) WriteRunsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := append([]string{"run", "algo", "views", "labeled_fraction"}, t.Keys...)
	head = append(head, "seed", "test_ensemble")
	for _, v := range t.Views {
		head = append(head, "test_"+v)
	}
	head = append(head, "val_ensemble", "warmup_test_ensemble", "updates", "wall_seconds", "examples_per_second_per_view")
	if err := cw.Write(head); err != nil {
		return err
	}
	opt := func(a *Accuracy) string {
		if a == nil {
			return ""
		}
		return num(a.Ensemble)
	}
	for _, g := range t.Groups {
		for _, r := range g.Runs {
			s := r.Summary
			rec := append([]string{r.Dir, s.Algo, strings.Join(s.Views, "+"), fracText(s.LabeledFraction)}, g.Extra...)
			rec = append(rec, strconv.FormatUint(s.Seed, 10), num(s.TestAccuracy.Ensemble))
			for _, v := range t.Views {
				if x, ok := s.TestAccuracy.PerView[v]; ok {
					rec = append(rec, num(x))
				} else {
					rec = append(rec, "")
				}
			}
			rec = append(rec, opt(s.ValAccuracy), opt(s.WarmupTestAccuracy), strconv.FormatInt(s.Updates, 10),
				num(s.WallSeconds), num(s.ExamplesPerSecondPerView))
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// Report reads the summary.json of each run directory and returns the
// Markdown table of `mct report`: mean ± std over seeds of the ensemble's and
// each view's test accuracy, per algorithm, view set and labeled fraction.
func Report(runDirs []string) (string, error) {
	if len(runDirs) == 0 {
		return "", fmt.Errorf("report: no run directories given")
	}
	var runs []Result
	seen := map[string]bool{}
	for _, d := range runDirs {
		if seen[filepath.Clean(d)] {
			continue
		}
		seen[filepath.Clean(d)] = true
		r, err := ReadResult(d)
		if err != nil {
			return "", fmt.Errorf("report: %w (is %s a finished run directory?)", err, d)
		}
		runs = append(runs, r)
	}
	return Tabulate(runs).Markdown(), nil
}
