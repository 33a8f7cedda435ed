package ckpt

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"mct/internal/atomicfile"
)

// ErrNoCheckpoint is returned (wrapped) by Latest and LatestForView when the
// run directory holds no committed step: the run starts from scratch.
var ErrNoCheckpoint = errors.New("no committed checkpoint")

// ErrOtherConfig is returned (wrapped) when the run directory was written by
// a run with a different RunID: resuming it would mix two configurations.
var ErrOtherConfig = errors.New("run directory was made by another configuration")

const (
	ckptDirName = "ckpt"
	stepPrefix  = "step-"
	markerName  = "COMMITTED"
)

// Dir is where a run directory keeps its checkpoints.
func Dir(runDir string) string { return filepath.Join(runDir, ckptDirName) }

func stepDir(runDir string, step int64) string {
	return filepath.Join(runDir, ckptDirName, stepPrefix+strconv.FormatInt(step, 10))
}

func rankFile(rank int) string { return "rank-" + strconv.Itoa(rank) + ".mct" }

// parseStep returns the step of a directory name written by stepDir, and
// false for anything else (including non-canonical spellings like step-007).
func parseStep(name string) (int64, bool) {
	s, ok := strings.CutPrefix(name, stepPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return n, true
}

// marker is the content of a step's COMMITTED file. It records the layout
// of the world that wrote the step, so a resuming rank can find a file of
// its view even when the number of replicas changed.
type marker struct {
	Format int    `json:"format"`
	RunID  string `json:"run_id"`
	Step   int64  `json:"step"`
	World  int    `json:"world"`
	Views  []int  `json:"views"` // Views[r] is the view rank r trained
}

// Save writes this rank's checkpoint of step h.Step to
// runDir/ckpt/step-<step>/rank-<rank>.mct atomically: a crash leaves either
// the previous file or the new one, never a mixture. sections are opaque
// named byte strings (weights, optimizer moments, RNG positions, ...); they
// are copied, so the caller may reuse its buffers once Save returns.
//
// If the step was already committed (a resumed run reaching it again), Save
// first removes the commit marker: until Commit runs again the step's files
// may come from two histories, so it must not be loadable.
func Save(runDir string, h Header, sections map[string][]byte) error {
	if err := h.validate(); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	h.Format = FormatVersion
	dir := stepDir(runDir, h.Step)
	if err := mkdirDurable(dir); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if err := uncommit(dir); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, rankFile(h.Rank)), func(w *bufio.Writer) error {
		return encode(w, h, sections)
	})
}

// mkdirDurable creates dir and any missing parents, syncing the parent of
// each directory it creates so the new entries survive a crash.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return atomicfile.SyncDir(parent)
}

// uncommit removes a step's marker if there is one. Two ranks may race to
// do it; the loser's "not exist" is success.
func uncommit(dir string) error {
	err := os.Remove(filepath.Join(dir, markerName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// Commit marks step as complete. Rank 0 calls it after a barrier that
// follows every rank's Save. It checks that all world rank files exist and
// carry the right step, rank, world and one RunID (reading headers and
// sizes, not the data), then writes the COMMITTED marker atomically.
//
// It then tidies the directory so that step is the newest history:
//   - committed steps after step belong to a history a resume abandoned
//     (it fell back to an older step); they are uncommitted;
//   - of the committed steps up to step, the newest keep stay and older
//     ones are removed (keep < 1 keeps all); keep at least 2 so Latest can
//     fall back when the newest file of a rank is damaged;
//   - uncommitted steps before step (attempts cut short by a crash) are
//     removed, as are leftover temporary files in step's directory.
func Commit(runDir string, step int64, world int, keep int) error {
	if world < 1 {
		return fmt.Errorf("commit step %d: world is %d: it must be at least 1", step, world)
	}
	dir := stepDir(runDir, step)
	m := marker{Format: FormatVersion, Step: step, World: world, Views: make([]int, world)}
	for r := range world {
		path := filepath.Join(dir, rankFile(r))
		fh, err := readHeader(path)
		if err != nil {
			return fmt.Errorf("commit step %d: rank %d has no usable file: %w", step, r, err)
		}
		if fh.Step != step || fh.Rank != r || fh.World != world {
			return fmt.Errorf("commit step %d: %s holds step %d, rank %d of world %d; expected step %d, rank %d of world %d",
				step, path, fh.Step, fh.Rank, fh.World, step, r, world)
		}
		if r == 0 {
			m.RunID = fh.RunID
		} else if fh.RunID != m.RunID {
			return fmt.Errorf("commit step %d: %s has run id %s, rank 0 has %s: ranks run different configurations",
				step, path, fh.RunID, m.RunID)
		}
		m.Views[r] = fh.View
	}
	if err := removeStrays(dir, world); err != nil {
		return fmt.Errorf("commit step %d: %w", step, err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("commit step %d: %w", step, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, markerName), func(w *bufio.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("commit step %d: %w", step, err)
	}
	if err := prune(runDir, step, keep); err != nil {
		return fmt.Errorf("commit step %d: prune: %w", step, err)
	}
	return nil
}

// removeStrays deletes temporary files left by crashed writers and rank
// files of ranks >= world (left by an earlier, larger world) from dir.
func removeStrays(dir string, world int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		stray := atomicfile.IsTemp(name)
		if r, ok := parseRankFile(name); ok && r >= world {
			stray = true
		}
		if stray {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseRankFile(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "rank-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".mct")
	if !ok {
		return 0, false
	}
	r, err := strconv.Atoi(s)
	return r, err == nil && r >= 0 && strconv.Itoa(r) == s
}

// stepEntry is one step directory as found on disk.
type stepEntry struct {
	step      int64
	committed bool
}

// listSteps returns every step directory under runDir, ascending.
func listSteps(runDir string) ([]stepEntry, error) {
	root := filepath.Join(runDir, ckptDirName)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var out []stepEntry
	for _, e := range entries {
		step, ok := parseStep(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		_, err := os.Stat(filepath.Join(root, e.Name(), markerName))
		out = append(out, stepEntry{step: step, committed: err == nil})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].step < out[j].step })
	return out, nil
}

func prune(runDir string, step int64, keep int) error {
	all, err := listSteps(runDir)
	if err != nil {
		return err
	}
	kept := 0
	for i := len(all) - 1; i >= 0; i-- {
		e := all[i]
		dir := stepDir(runDir, e.step)
		switch {
		case e.step > step:
			if e.committed {
				if err := uncommit(dir); err != nil {
					return err
				}
			}
		case e.committed:
			kept++
			if keep < 1 || kept <= keep {
				continue
			}
			// Marker first: a crash halfway through RemoveAll must not
			// leave a committed step with files missing.
			if err := uncommit(dir); err != nil {
				return err
			}
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		default: // uncommitted, before step: an abandoned attempt
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
	}
	return atomicfile.SyncDir(filepath.Join(runDir, ckptDirName))
}

// Steps returns the committed steps under runDir, ascending; none is an
// empty list, not an error.
func Steps(runDir string) ([]int64, error) {
	all, err := listSteps(runDir)
	if err != nil {
		return nil, err
	}
	var steps []int64
	for _, e := range all {
		if e.committed {
			steps = append(steps, e.step)
		}
	}
	return steps, nil
}

func readMarker(runDir string, step int64) (marker, error) {
	path := filepath.Join(stepDir(runDir, step), markerName)
	var m marker
	data, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("commit marker %s: %w", path, err)
	}
	if m.Format != FormatVersion {
		return m, fmt.Errorf("commit marker %s: format version %d, this mct reads version %d: resume with the mct that wrote it", path, m.Format, FormatVersion)
	}
	if m.Step != step || m.World < 1 || len(m.Views) != m.World {
		return m, fmt.Errorf("commit marker %s: inconsistent (step %d, world %d, %d views)", path, m.Step, m.World, len(m.Views))
	}
	return m, nil
}

// A picker names, for a committed step, the ranks whose files the caller
// may load, in order of preference, and how to check a loaded header.
type picker struct {
	what  string // for messages: "rank 3", "view 1"
	ranks func(m marker) ([]int, error)
	fits  func(h Header) bool
}

func byRank(rank int) picker {
	return picker{
		what: fmt.Sprintf("rank %d", rank),
		ranks: func(m marker) ([]int, error) {
			if rank < 0 || rank >= m.World {
				return nil, fmt.Errorf("step %d was written by %d ranks, there is no file for rank %d: resume with %d ranks, or load by view (LatestForView) to change the number of replicas",
					m.Step, m.World, rank, m.World)
			}
			return []int{rank}, nil
		},
		fits: func(h Header) bool { return h.Rank == rank },
	}
}

func byView(view int) picker {
	return picker{
		what: fmt.Sprintf("view %d", view),
		ranks: func(m marker) ([]int, error) {
			var rs []int
			for r, v := range m.Views {
				if v == view {
					rs = append(rs, r)
				}
			}
			if len(rs) == 0 {
				return nil, fmt.Errorf("step %d has no rank that trained view %d (views by rank: %v): resume with the same views", m.Step, view, m.Views)
			}
			return rs, nil
		},
		fits: func(h Header) bool { return h.View == view },
	}
}

// Latest loads this rank's file of the newest committed step that loads and
// verifies. A damaged or missing file is logged (slog.Warn, naming the
// file) and the previous committed step is tried. Errors: ErrNoCheckpoint
// when nothing is committed; ErrOtherConfig when the directory belongs to
// another RunID; an error when committed steps exist but none loads.
//
// Ranks fall back independently, so they may return different steps: the
// caller must agree on one (see the package documentation) and Load it.
func Latest(runDir string, rank int, runID string) (Header, map[string][]byte, error) {
	return latest(runDir, runID, byRank(rank))
}

// LatestForView is Latest for a rank that may not have existed when the
// checkpoint was written: it loads the file of any rank that trained view,
// preferring the lowest rank and trying the others of the same step before
// falling back to an older step. It is correct only if every section saved
// is the same on all replicas of a view (the pool keeps them bit-identical);
// this is what resuming with a different number of replicas relies on.
// The Header returned is the file's: its Rank and Replica are those of the
// rank that wrote it, not necessarily the caller's.
func LatestForView(runDir string, view int, runID string) (Header, map[string][]byte, error) {
	return latest(runDir, runID, byView(view))
}

// Load loads this rank's file of one committed step; any damage is an error.
func Load(runDir string, step int64, rank int, runID string) (Header, map[string][]byte, error) {
	return load(runDir, step, runID, byRank(rank))
}

// LoadForView loads a file of view from one committed step, trying the
// view's ranks in order; it fails only if none of them loads.
func LoadForView(runDir string, step int64, view int, runID string) (Header, map[string][]byte, error) {
	return load(runDir, step, runID, byView(view))
}

func latest(runDir, runID string, p picker) (Header, map[string][]byte, error) {
	steps, err := Steps(runDir)
	if err != nil {
		return Header{}, nil, err
	}
	if len(steps) == 0 {
		return Header{}, nil, fmt.Errorf("%w in %s", ErrNoCheckpoint, runDir)
	}
	for i := len(steps) - 1; i >= 0; i-- {
		h, sections, err := loadStep(runDir, steps[i], runID, p, true)
		if err == nil {
			return h, sections, nil
		}
		if errors.Is(err, ErrOtherConfig) || errors.Is(err, errLayout) {
			return Header{}, nil, err
		}
		slog.Warn("checkpoint unusable, trying an older step", "step", steps[i], "err", err)
	}
	return Header{}, nil, fmt.Errorf("none of the %d committed checkpoint steps in %s loads for %s (see the warnings above): the files are damaged; restore them or start with a new --out",
		len(steps), runDir, p.what)
}

func load(runDir string, step int64, runID string, p picker) (Header, map[string][]byte, error) {
	if _, err := os.Stat(filepath.Join(stepDir(runDir, step), markerName)); err != nil {
		return Header{}, nil, fmt.Errorf("load checkpoint: step %d in %s is not committed", step, runDir)
	}
	return loadStep(runDir, step, runID, p, false)
}

// errLayout marks errors that an older step cannot cure: the world that
// wrote the checkpoint does not have the rank or view asked for.
var errLayout = errors.New("checkpoint layout")

// loadStep loads the first usable file that p picks from a committed step.
// With warn, each candidate that fails before the last is logged.
func loadStep(runDir string, step int64, runID string, p picker, warn bool) (Header, map[string][]byte, error) {
	m, err := readMarker(runDir, step)
	if err != nil {
		return Header{}, nil, err
	}
	if m.RunID != runID {
		return Header{}, nil, otherConfig(runDir, m.RunID, runID)
	}
	ranks, err := p.ranks(m)
	if err != nil {
		return Header{}, nil, fmt.Errorf("%w: %w", errLayout, err)
	}
	for i, r := range ranks {
		path := filepath.Join(stepDir(runDir, step), rankFile(r))
		h, sections, err := Read(path)
		if err == nil && h.RunID != runID {
			return Header{}, nil, otherConfig(runDir, h.RunID, runID)
		}
		if err == nil && (h.Step != step || h.Rank != r || !p.fits(h)) {
			err = fmt.Errorf("checkpoint %s: holds step %d, rank %d, view %d: it is misplaced", path, h.Step, h.Rank, h.View)
		}
		if err == nil {
			return h, sections, nil
		}
		if i == len(ranks)-1 {
			return Header{}, nil, err
		}
		if warn {
			slog.Warn("checkpoint file unusable, trying another replica", "file", path, "err", err)
		}
	}
	panic("unreachable: a picker returns at least one rank")
}

func otherConfig(runDir, found, want string) error {
	return &otherConfigError{dir: runDir, found: found, want: want}
}

// otherConfigError is ErrOtherConfig with the directory and both run ids.
type otherConfigError struct{ dir, found, want string }

func (e *otherConfigError) Error() string {
	return fmt.Sprintf("run directory %s was made by another configuration (run id %s, this run %s): use a new --out or the same flags",
		e.dir, e.found, e.want)
}

func (e *otherConfigError) Is(target error) bool { return target == ErrOtherConfig }
