package sweep

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"mct/internal/atomicfile"
)

// Names of the files Collect writes.
const (
	ResultsMarkdown = "results.md"
	ResultsCSV      = "results.csv"
	RunsCSV         = "runs.csv"
	ResultsPlot     = "accuracy.png"
)

// Collection is what Collect gathered and wrote.
type Collection struct {
	Table Table
	// Markdown is the content of results.md.
	Markdown string
	// Files are the paths written.
	Files []string
	// Unfinished are the run directories (or, from a grid, the combinations'
	// would-be run directories) without a summary.json.
	Unfinished []string
}

// Collect gathers the summary.json of every finished run of a sweep into one
// table and a plot. gridOrDir is a grid file (its runs/ is read, and
// combinations that have not finished are listed), a directory holding
// runs/, or a directory of run directories. It writes results.md (grouped
// table), results.csv (the same as CSV), runs.csv (one row per run) and
// accuracy.png (ensemble test accuracy against the labeled fraction, one line
// per algorithm and configuration, mean ± std over seeds) into the grid's
// directory or the directory given.
func Collect(gridOrDir string) (*Collection, error) {
	outDir, runDirs, extra, err := locateRuns(gridOrDir)
	if err != nil {
		return nil, err
	}
	c := &Collection{}
	var runs []Result
	for _, d := range runDirs {
		r, err := ReadResult(d)
		if errors.Is(err, fs.ErrNotExist) {
			c.Unfinished = append(c.Unfinished, d)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("collect: %w", err)
		}
		for k, v := range extra[d] {
			r.Settings[k] = v
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("collect: no finished run (no %s) under %s", SummaryFile, outDir)
	}
	c.Table = Tabulate(runs)
	var md strings.Builder
	md.WriteString(c.Table.Markdown())
	fmt.Fprintf(&md, "\n%d finished runs in %d configurations; test accuracy in %%, mean ± sample std over seeds.\n", len(runs), len(c.Table.Groups))
	if len(c.Unfinished) > 0 {
		fmt.Fprintf(&md, "%d runs have not finished: %s\n", len(c.Unfinished), strings.Join(relAll(outDir, c.Unfinished), ", "))
	}
	c.Markdown = md.String()

	var csvBuf, runsBuf bytes.Buffer
	if err := c.Table.WriteCSV(&csvBuf); err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	if err := c.Table.WriteRunsCSV(&runsBuf); err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	png, err := c.Table.Plot()
	if err != nil {
		return nil, fmt.Errorf("collect: plot: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ResultsMarkdown, []byte(c.Markdown)}, {ResultsCSV, csvBuf.Bytes()}, {RunsCSV, runsBuf.Bytes()}, {ResultsPlot, png}} {
		path := filepath.Join(outDir, f.name)
		if err := atomicfile.WriteFile(path, f.data); err != nil {
			return nil, fmt.Errorf("collect: %w", err)
		}
		c.Files = append(c.Files, path)
	}
	return c, nil
}

// locateRuns returns where to write, the run directories to read and, from a
// grid, each run directory's varied settings (keyed as normKey spells them),
// which group runs even when the trainer's config does not record a flag.
func locateRuns(gridOrDir string) (string, []string, map[string]map[string]string, error) {
	st, err := os.Stat(gridOrDir)
	if err != nil {
		return "", nil, nil, fmt.Errorf("collect: %w", err)
	}
	if !st.IsDir() {
		g, err := Load(gridOrDir)
		if err != nil {
			return "", nil, nil, err
		}
		combos, err := g.Combos()
		if err != nil {
			return "", nil, nil, err
		}
		dirs := make([]string, len(combos))
		extra := map[string]map[string]string{}
		for i, c := range combos {
			dirs[i] = filepath.Join(g.Dir, RunsDir, c.Name)
			m := map[string]string{}
			for _, s := range c.Varied {
				m[normKey(s.Flag)] = s.Value
			}
			extra[dirs[i]] = m
		}
		return g.Dir, dirs, extra, nil
	}
	outDir := gridOrDir
	parent := gridOrDir
	if st, err := os.Stat(filepath.Join(gridOrDir, RunsDir)); err == nil && st.IsDir() {
		parent = filepath.Join(gridOrDir, RunsDir)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return "", nil, nil, fmt.Errorf("collect: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, filepath.Join(parent, e.Name()))
		}
	}
	return outDir, dirs, nil, nil
}

func relAll(base string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		if r, err := filepath.Rel(base, p); err == nil {
			p = r
		}
		out[i] = p
	}
	return out
}

// errPoints is one line of the plot with its error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// Plot draws the ensemble's test accuracy (%) against the labeled fraction,
// one line per algorithm and configuration, error bars ± one sample std over
// seeds, and returns the PNG. The fraction axis is logarithmic when the
// fractions span a factor of ten or more, as label-fraction sweeps usually do.
func (t Table) Plot() ([]byte, error) {
	p, err := t.plot()
	if err != nil {
		return nil, err
	}
	w, err := p.WriterTo(7*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// plot is Plot's figure.
func (t Table) plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Ensemble test accuracy"
	p.X.Label.Text = "labeled fraction"
	p.Y.Label.Text = "test accuracy (%), mean ± std over seeds"
	p.Legend.Top = false
	p.Legend.Left = false

	var order []string
	lines := map[string]*errPoints{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range t.Groups {
		k := g.series()
		if lines[k] == nil {
			lines[k] = &errPoints{}
			order = append(order, k)
		}
		l := lines[k]
		l.XYs = append(l.XYs, plotter.XY{X: g.LabeledFraction, Y: 100 * g.Test.Mean})
		l.YErrors = append(l.YErrors, struct{ Low, High float64 }{100 * g.Test.Std, 100 * g.Test.Std})
		lo, hi = math.Min(lo, g.LabeledFraction), math.Max(hi, g.LabeledFraction)
	}
	if hi >= 10*lo {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for i, k := range order {
		// Groups are sorted by fraction within a series, so lines run left to right.
		l := lines[k]
		line, points, err := plotter.NewLinePoints(l)
		if err != nil {
			return nil, err
		}
		bars, err := plotter.NewYErrorBars(l)
		if err != nil {
			return nil, err
		}
		c := plotutil.Color(i)
		line.Color, points.Color, bars.Color = c, c, c
		line.Dashes = plotutil.Dashes(i / 7)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points, bars)
		p.Legend.Add(k, line, points)
	}
	p.Add(plotter.NewGrid())
	if lo == hi { // one fraction: an axis around it, not one the plot centres on zero
		p.X.Min, p.X.Max = lo/2, lo*3/2
	}
	p.Y.Padding, p.X.Padding = vg.Points(4), vg.Points(4)
	p.BackgroundColor = color.White
	return p, nil
}
