package sweep

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
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
	// Shared is every pair of the group's views, in view order, with how
	// alike their test errors were.
	Shared []PairErrors
}

// PairErrors is how alike two views' test errors were over a group's runs,
// as fractions of the test examples (see SharedErrors). Each Stat's N counts
// the runs that report the pair: summaries written before the trainer
// measured it have none.
type PairErrors struct {
	A, B                              string
	BothWrong, Independent, SameWrong Stat
	// WarmupBothWrong is BothWrong after the warmup, which supervised runs
	// do not have: co-training and MCT should make it fall, not rise.
	WarmupBothWrong Stat
}

func pairStats(runs []Result, x, y string) PairErrors {
	var both, indep, same, warm []float64
	for _, r := range runs {
		if e, ok := r.Summary.TestAccuracy.pairErrors(x, y); ok {
			both, indep, same = append(both, e.BothWrong), append(indep, e.Independent), append(same, e.SameWrong)
		}
		if e, ok := r.Summary.WarmupTestAccuracy.pairErrors(x, y); ok {
			warm = append(warm, e.BothWrong)
		}
	}
	return PairErrors{A: x, B: y, BothWrong: stat(both), Independent: stat(indep), SameWrong: stat(same), WarmupBothWrong: stat(warm)}
}

// viewPair is two view names in sorted order: CSV columns are per pair, and
// groups may list the same two views in either order.
type viewPair [2]string

func sortedPair(x, y string) viewPair {
	if y < x {
		x, y = y, x
	}
	return viewPair{x, y}
}

func (p viewPair) String() string { return p[0] + "+" + p[1] }

// pair returns the group's PairErrors for views x and y, in either order.
func (g Group) pair(p viewPair) (PairErrors, bool) {
	for _, e := range g.Shared {
		if sortedPair(e.A, e.B) == p {
			return e, true
		}
	}
	return PairErrors{}, false
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
		for a := range g.Views {
			for b := a + 1; b < len(g.Views); b++ {
				g.Shared = append(g.Shared, pairStats(g.Runs, g.Views[a], g.Views[b]))
			}
		}
	}
	sort.SliceStable(t.Groups, func(a, b int) bool { return lessGroup(t.Groups[a], t.Groups[b]) })
	return t
}

// algoOrder puts baselines before the method they are compared with.
var algoOrder = map[string]int{"supervised": 0, "cotrain": 1, "mpl": 2, "mct": 3}

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

// sharedPairs lists, sorted, every pair of views some run reports shared
// errors for (none when every summary predates them).
func (t Table) sharedPairs() []viewPair {
	seen := map[viewPair]bool{}
	for _, g := range t.Groups {
		for _, p := range g.Shared {
			if p.BothWrong.N > 0 || p.WarmupBothWrong.N > 0 {
				seen[sortedPair(p.A, p.B)] = true
			}
		}
	}
	return slices.SortedFunc(maps.Keys(seen), func(a, b viewPair) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	})
}

// mdRow writes one row of a Markdown table.
func mdRow(b *strings.Builder, cells []string) {
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

// mdAlign is a table's alignment row: left, but right for the numeric columns.
func mdAlign(n int, right ...int) []string {
	align := make([]string, n)
	for i := range align {
		align[i] = "---"
	}
	for _, i := range right {
		align[i] = "---:"
	}
	return align
}

// Markdown renders the table: one row per configuration, test accuracy in
// percent as mean ± sample standard deviation over its seeds; then, when some
// run reports them, the shared errors of each pair of views (sharedMarkdown).
func (t Table) Markdown() string {
	var b strings.Builder
	head := append([]string{"algo", "views", "labeled"}, t.Keys...)
	head = append(head, "seeds", "test acc. ensemble (%)", "test acc. per view (%)")
	mdRow(&b, head)
	mdRow(&b, mdAlign(len(head), 2, len(head)-2))
	for _, g := range t.Groups {
		per := make([]string, len(g.Views))
		for i, v := range g.Views {
			per[i] = v + " " + pct(g.TestPerView[v])
		}
		cells := append([]string{g.Algo, strings.Join(g.Views, "+"), fracText(g.LabeledFraction)}, g.Extra...)
		cells = append(cells, fmt.Sprintf("%d (%s)", len(g.Runs), seedsText(g)), pct(g.Test), strings.Join(per, ", "))
		mdRow(&b, cells)
	}
	t.sharedMarkdown(&b)
	return b.String()
}

// sharedMarkdown writes a second table, under the accuracies, with a row per
// configuration and pair of views: a table of its own because a column per
// pair would not fit a terminal once there are three views. It writes nothing
// when no run reports shared errors, so reports of older runs do not change.
func (t Table) sharedMarkdown(b *strings.Builder) {
	if len(t.sharedPairs()) == 0 {
		return
	}
	warmup := false
	for _, g := range t.Groups {
		for _, p := range g.Shared {
			warmup = warmup || p.WarmupBothWrong.N > 0
		}
	}
	b.WriteString("\nShared errors on test, per pair of views (mean ± std over seeds, - where no run reports it):\n" +
		"% of the test examples both get wrong, that % if their errors were independent,\n" +
		"and % both get wrong with the same class")
	if warmup {
		b.WriteString("; after warmup: both wrong after the warmup")
	}
	b.WriteString(".\n\n")
	head := append([]string{"algo", "views", "labeled"}, t.Keys...)
	head = append(head, "pair", "both wrong", "if independent", "same class")
	if warmup {
		head = append(head, "after warmup")
	}
	right := []int{2}
	for i := len(t.Keys) + 4; i < len(head); i++ {
		right = append(right, i)
	}
	mdRow(b, head)
	mdRow(b, mdAlign(len(head), right...))
	for _, g := range t.Groups {
		for i, p := range g.Shared {
			// A configuration's further pairs leave its columns blank, so
			// the pairs read as one block.
			cells := make([]string, 3+len(g.Extra))
			if i == 0 {
				cells = append([]string{g.Algo, strings.Join(g.Views, "+"), fracText(g.LabeledFraction)}, g.Extra...)
			}
			// The test columns come from the same runs; the pair says how
			// many when not all of the configuration's, and the warmup
			// column when its runs are fewer still.
			n := len(g.Runs)
			cells = append(cells, p.A+"+"+p.B+runsNote(p.BothWrong.N, n),
				shareCell(p.BothWrong), shareCell(p.Independent), shareCell(p.SameWrong))
			if warmup {
				w := shareCell(p.WarmupBothWrong)
				if p.WarmupBothWrong.N != p.BothWrong.N {
					w += runsNote(p.WarmupBothWrong.N, n)
				}
				cells = append(cells, w)
			}
			mdRow(b, cells)
		}
	}
}

// shareCell is a shared-errors cell in percent, "-" when no run reports it.
func shareCell(s Stat) string {
	if s.N == 0 {
		return "-"
	}
	return pct(s)
}

// runsNote says over how many of a configuration's runs a cell averages,
// when some but not all of them report it (older summaries lack shared errors).
func runsNote(n, runs int) string {
	if n == 0 || n == runs {
		return ""
	}
	return fmt.Sprintf(" (%d of %d runs)", n, runs)
}

// num prints 10 significant digits: more than any accuracy carries, and
// free of binary noise such as 0.47800000000000004.
func num(x float64) string { return strconv.FormatFloat(x, 'g', 10, 64) }

// WriteCSV writes the table with one row per configuration: mean, sample
// standard deviation (empty for one run) and count, accuracies as fractions.
// When some run reports shared errors, each pair of views (named in sorted
// order, e.g. gabor+hog) adds the test both-wrong, if-independent and
// same-wrong-class fractions and the warmup's both-wrong fraction (mean and
// std over the runs that report them, empty where none does) and how many
// runs report the pair on test.
func (t Table) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := append([]string{"algo", "views", "labeled_fraction"}, t.Keys...)
	head = append(head, "runs", "seeds", "test_ensemble_mean", "test_ensemble_std")
	for _, v := range t.Views {
		head = append(head, "test_"+v+"_mean", "test_"+v+"_std")
	}
	pairs := t.sharedPairs()
	for _, p := range pairs {
		for _, f := range []string{"test_both_wrong_", "test_if_independent_", "test_same_wrong_class_", "warmup_test_both_wrong_"} {
			head = append(head, f+p.String()+"_mean", f+p.String()+"_std")
		}
		head = append(head, "test_shared_errors_"+p.String()+"_runs")
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
	mean := func(s Stat) string {
		if s.N == 0 {
			return ""
		}
		return num(s.Mean)
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
		for _, vp := range pairs {
			p, ok := g.pair(vp)
			if !ok {
				rec = append(rec, "", "", "", "", "", "", "", "", "")
				continue
			}
			for _, s := range []Stat{p.BothWrong, p.Independent, p.SameWrong, p.WarmupBothWrong} {
				rec = append(rec, mean(s), std(s))
			}
			rec = append(rec, strconv.Itoa(p.BothWrong.N))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteRunsCSV writes one row per run with everything its summary reports,
// for analyses the grouped table does not cover; shared errors as in
// WriteCSV, empty where a run does not report the pair.
func (t Table) WriteRunsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := append([]string{"run", "algo", "views", "labeled_fraction"}, t.Keys...)
	head = append(head, "seed", "test_ensemble")
	for _, v := range t.Views {
		head = append(head, "test_"+v)
	}
	head = append(head, "val_ensemble", "warmup_test_ensemble", "updates", "wall_seconds", "examples_per_second_per_view")
	pairs := t.sharedPairs()
	for _, p := range pairs {
		k := p.String()
		head = append(head, "test_both_wrong_"+k, "test_if_independent_"+k, "test_same_wrong_class_"+k, "warmup_test_both_wrong_"+k)
	}
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
			for _, p := range pairs {
				if test, ok := s.TestAccuracy.pairErrors(p[0], p[1]); ok {
					rec = append(rec, num(test.BothWrong), num(test.Independent), num(test.SameWrong))
				} else {
					rec = append(rec, "", "", "")
				}
				if w, ok := s.WarmupTestAccuracy.pairErrors(p[0], p[1]); ok {
					rec = append(rec, num(w.BothWrong))
				} else {
					rec = append(rec, "")
				}
			}
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
// each view's test accuracy, per algorithm, view set and labeled fraction,
// and under it the shared errors of each pair of views (Table.Markdown).
// Paths without a summary.json (an unfinished run, a file beside the runs:
// mct report runs/*) are skipped and returned; a summary.json that is there
// but malformed is an error.
func Report(runDirs []string) (md string, skipped []string, err error) {
	if len(runDirs) == 0 {
		return "", nil, fmt.Errorf("no run directories given")
	}
	var runs []Result
	seen := map[string]bool{}
	for _, d := range runDirs {
		if seen[filepath.Clean(d)] {
			continue
		}
		seen[filepath.Clean(d)] = true
		r, err := ReadResult(d)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			skipped = append(skipped, d)
			continue
		}
		if err != nil {
			return "", nil, err
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return "", skipped, fmt.Errorf("no finished run (a directory with summary.json) among %s", strings.Join(runDirs, " "))
	}
	return Tabulate(runs).Markdown(), skipped, nil
}
