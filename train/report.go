package train

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"mct/internal/atomicfile"
)

// reporter is rank 0's voice: progress on the terminal (one rewritten line on a TTY,
// plain lines in batch logs), metrics.jsonl, and the run directory's final files. On
// every other rank it is silent.
type reporter struct {
	on       bool
	tty      bool
	w        io.Writer
	dir      string
	metrics  *os.File
	lock     *os.File // lockRun's, held to the end so that no run replaces this one
	written  int64    // the length of metrics.jsonl
	start    time.Time
	lastTTY  time.Time // the last status on a terminal
	lastLine time.Time // the last line printed

	warmup map[string][]float64 // validation accuracy per warmup epoch, per view
	epochs []mctEpoch
}

func newReporter(on bool, cfg Config, w io.Writer) (*reporter, error) {
	r := &reporter{on: on, w: w, dir: cfg.Out, start: time.Now(), lastLine: time.Now(), warmup: map[string][]float64{}}
	if !on {
		return r, nil
	}
	if f, ok := w.(*os.File); ok {
		r.tty = term.IsTerminal(int(f.Fd()))
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create the run directory: %w", err)
	}
	b, _ := json.MarshalIndent(struct {
		RunID string `json:"run_id"`
		Config
	}{cfg.RunID(), cfg}, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(cfg.Out, "config.json"), append(b, '\n')); err != nil {
		return nil, err
	}
	// A resumed run keeps the records up to its checkpoint (keepMetrics); a new one starts
	// the file afresh.
	flags := os.O_RDWR | os.O_CREATE
	if !cfg.Resume {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(filepath.Join(cfg.Out, "metrics.jsonl"), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create metrics.jsonl: %w", err)
	}
	r.metrics = f
	r.lock, _ = lockRun(cfg.Out)
	return r, nil
}

// line prints a permanent progress line, prefixed with the elapsed time.
func (r *reporter) line(format string, args ...any) {
	if !r.on {
		return
	}
	r.lastLine = time.Now()
	msg := fmt.Sprintf("[%6.1fs] ", time.Since(r.start).Seconds()) + fmt.Sprintf(format, args...)
	if r.tty {
		fmt.Fprintf(r.w, "\r\033[K%s\n", msg)
		return
	}
	fmt.Fprintln(r.w, msg)
}

// logQuiet is the longest a batch log goes without a line while status reports progress.
var logQuiet = 30 * time.Second

// status shows transient progress: rewritten in place on a terminal at most 10 times a
// second; in batch logs a plain line when line has printed nothing for 30 s, so that a
// long phase (a warmup of many epochs, MCT epochs on a large dataset) is not silent.
func (r *reporter) status(format string, args ...any) {
	if !r.on {
		return
	}
	if !r.tty {
		if time.Since(r.lastLine) >= logQuiet {
			r.line(format, args...)
		}
		return
	}
	if time.Since(r.lastTTY) < 100*time.Millisecond {
		return
	}
	r.lastTTY = time.Now()
	fmt.Fprintf(r.w, "\r\033[K[%6.1fs] %s", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *reporter) metric(v any) {
	if !r.on {
		return
	}
	b, err := json.Marshal(v)
	if err != nil { // a NaN loss (diverged training) cannot be encoded: say so, not silently skip
		r.line("warning: a record left out of metrics.jsonl: %v", err)
		return
	}
	n, _ := r.metrics.Write(append(b, '\n'))
	r.written += int64(n)
}

// keepMetrics keeps the first n bytes of metrics.jsonl, the records written up to the
// checkpoint a run resumes (0: none), and appends after them.
func (r *reporter) keepMetrics(n int64) error {
	if !r.on {
		return nil
	}
	fi, err := r.metrics.Stat()
	if err != nil {
		return fmt.Errorf("metrics.jsonl: %w", err)
	}
	if fi.Size() < n {
		r.line("warning: %s/metrics.jsonl holds %d bytes, the checkpoint recorded %d: the records before the resume are incomplete", r.dir, fi.Size(), n)
		n = fi.Size()
	}
	if err := r.metrics.Truncate(n); err != nil {
		return fmt.Errorf("metrics.jsonl: %w", err)
	}
	if _, err := r.metrics.Seek(n, io.SeekStart); err != nil {
		return fmt.Errorf("metrics.jsonl: %w", err)
	}
	r.written = n
	return nil
}

// finish writes summary.json and the learning curves.
func (r *reporter) finish(s *Summary) error {
	if !r.on {
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil { // a NaN accuracy (an empty split) would otherwise write an empty summary
		return fmt.Errorf("summary.json: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(r.dir, "summary.json"), append(b, '\n')); err != nil {
		return err
	}
	if err := plotCurves(filepath.Join(r.dir, "curves.png"), s, r.warmup, r.epochs); err != nil {
		r.line("warning: no learning-curve plot: %v", err)
	}
	r.line("wrote %s (summary.json, metrics.jsonl, curves.png, model-*.safetensors)", r.dir)
	return nil
}

func (r *reporter) close() {
	if r.metrics != nil {
		r.metrics.Close()
	}
	if r.lock != nil {
		r.lock.Close()
	}
}

// Table is the results table mct train prints at the end: test (and validation) accuracy
// per view and for the ensemble, after warmup and at the end when the algorithm has one.
func (s *Summary) Table() string {
	var b strings.Builder
	warm := s.WarmupTestAccuracy != nil
	fmt.Fprintf(&b, "\n%-12s", s.Algo)
	if warm {
		fmt.Fprintf(&b, " %14s", "test (warmup)")
	}
	fmt.Fprintf(&b, " %10s %10s\n", "test", "val")
	row := func(name string, test, val float64, w float64) {
		fmt.Fprintf(&b, "%-12s", name)
		if warm {
			fmt.Fprintf(&b, " %14.4f", w)
		}
		fmt.Fprintf(&b, " %10.4f %10.4f\n", test, val)
	}
	for _, v := range s.Views {
		var w float64
		if warm {
			w = s.WarmupTestAccuracy.PerView[v]
		}
		row(v, s.TestAccuracy.PerView[v], s.ValAccuracy.PerView[v], w)
	}
	var w float64
	if warm {
		w = s.WarmupTestAccuracy.Ensemble
	}
	row("ensemble", s.TestAccuracy.Ensemble, s.ValAccuracy.Ensemble, w)
	for i, e := range s.TestAccuracy.SharedErrors {
		fmt.Fprintf(&b, "%s wrong together on %.2f%% of test", e.A+"+"+e.B, 100*e.BothWrong)
		if warm && i < len(s.WarmupTestAccuracy.SharedErrors) {
			fmt.Fprintf(&b, " (after warmup %.2f%%)", 100*s.WarmupTestAccuracy.SharedErrors[i].BothWrong)
		}
		fmt.Fprintf(&b, "; %.2f%% if their errors were independent\n", 100*e.Independent)
	}
	fmt.Fprintf(&b, "%d labeled, %d updates, %.1f s wall\n\n", s.Labeled, s.Updates, s.WallSeconds)
	return b.String()
}

// BuildProgress reports long data builds (views of 70k images) with an ETA: one line
// rewritten in place on a terminal, a line per tenth of the work in batch logs. The rate
// counts only work done since the stage started here, so chunks a resumed build loads
// from disk do not make the ETA optimistic.
func BuildProgress(w io.Writer) func(stage string, done, total int) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	var (
		mu         sync.Mutex
		stage      string
		start      time.Time
		last       time.Time
		base, tens int
	)
	return func(s string, done, total int) {
		mu.Lock()
		defer mu.Unlock()
		if s != stage {
			stage, start, base, tens = s, time.Now(), done, done*10/max(total, 1)
		}
		if done >= total {
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
			fmt.Fprintf(w, "%s: %d done in %.1fs\n", s, total, time.Since(start).Seconds())
			stage = ""
			return
		}
		eta := ""
		if el := time.Since(start).Seconds(); done > base && el > 0 {
			left := float64(total-done) / (float64(done-base) / el)
			eta = ", ETA " + (time.Duration(left) * time.Second).String()
		}
		switch {
		case tty && time.Since(last) > 200*time.Millisecond:
			last = time.Now()
			fmt.Fprintf(w, "\r\033[K%s: %d/%d%s", s, done, total, eta)
		case !tty && done*10/total > tens:
			tens = done * 10 / total
			fmt.Fprintf(w, "%s: %d/%d (%d%%)%s\n", s, done, total, 100*done/total, eta)
		}
	}
}

func fmtViews(names []string, acc map[string]float64) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.4f", n, acc[n])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func fmtFloats(x []float64, f string) string {
	parts := make([]string, len(x))
	for i, v := range x {
		parts[i] = fmt.Sprintf(f, v)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
