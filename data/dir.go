package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"mct/internal/atomicfile"
)

// manifestFormat names the version of the dataset directory layout.
const manifestFormat = "mct-dataset/1"

// The splits every dataset directory has, in this order.
var splitNames = [2]string{"train", "test"}

// manifest is manifest.json: everything about a dataset directory except the matrices.
type manifest struct {
	Format     string            `json:"format"`
	Name       string            `json:"name"`
	Classes    int               `json:"classes"`
	ClassNames []string          `json:"class_names,omitempty"`
	Splits     map[string]int    `json:"splits"` // rows per split
	Labels     map[string]string `json:"labels"` // split → file
	Views      []manifestView    `json:"views"`
	Provenance map[string]any    `json:"provenance,omitempty"`
}

type manifestView struct {
	Name   string            `json:"name"`
	Dim    int               `json:"dim"`
	Params map[string]any    `json:"params,omitempty"`
	Files  map[string]string `json:"files"` // split → file
	// Norm names a 2×Dim float32 .npy: the per-column mean and standard deviation
	// of the train split that were subtracted and divided out (absent: raw features).
	Norm string `json:"norm,omitempty"`
}

// View is one feature matrix per split, rows aligned with the labels.
// Train and Test are row-major N×Dim and may be memory-mapped copy-on-write:
// writing to them is allowed and never changes the files.
type View struct {
	Name   string
	Dim    int
	Params map[string]any
	Train  []float32
	Test   []float32
	// Mean and Std are the train-split column statistics removed when the view was
	// built (features = (raw-Mean)/Std); nil when the view holds raw features.
	Mean, Std []float32
}

// Dataset is a dataset directory (or a built-in dataset) loaded in memory.
type Dataset struct {
	Name        string
	Classes     int
	ClassNames  []string
	Views       []View
	TrainLabels []int32
	TestLabels  []int32
	Provenance  map[string]any
	// Dir is the directory the data was read from.
	Dir string
}

// View returns the view called name, or nil.
func (d *Dataset) View(name string) *View {
	for i := range d.Views {
		if d.Views[i].Name == name {
			return &d.Views[i]
		}
	}
	return nil
}

// LoadDir reads a dataset directory: the named views (all when names is empty)
// and the labels, checking every invariant of the format.
func LoadDir(dir string, names []string) (*Dataset, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	d := &Dataset{Name: m.Name, Classes: m.Classes, ClassNames: m.ClassNames, Provenance: m.Provenance, Dir: dir}
	mpath := filepath.Join(dir, "manifest.json")
	for k, split := range splitNames {
		a, err := ReadNPY(filepath.Join(dir, m.Labels[split]))
		if err != nil {
			return nil, err
		}
		file := filepath.Join(dir, m.Labels[split])
		if len(a.Shape) != 1 || a.Shape[0] != m.Splits[split] {
			return nil, fmt.Errorf("%s: shape %v, want (%d,) (splits.%s in %s)", file, a.Shape, m.Splits[split], split, mpath)
		}
		y, err := a.Int32s()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		if err := checkLabels(file, y, m.Classes, k == 0); err != nil {
			return nil, err
		}
		if k == 0 {
			d.TrainLabels = y
		} else {
			d.TestLabels = y
		}
	}
	want := names
	if len(want) == 0 {
		for _, v := range m.Views {
			want = append(want, v.Name)
		}
	}
	for _, name := range want {
		var mv *manifestView
		for i := range m.Views {
			if m.Views[i].Name == name {
				mv = &m.Views[i]
			}
		}
		if mv == nil {
			var have []string
			for _, v := range m.Views {
				have = append(have, v.Name)
			}
			return nil, fmt.Errorf("%s: no view %q (have: %s)", mpath, name, strings.Join(have, ", "))
		}
		v := View{Name: mv.Name, Dim: mv.Dim, Params: mv.Params}
		for k, split := range splitNames {
			x, err := readMatrix(filepath.Join(dir, mv.Files[split]), m.Splits[split], mv.Dim)
			if err != nil {
				return nil, err
			}
			if k == 0 {
				v.Train = x
			} else {
				v.Test = x
			}
		}
		if mv.Norm != "" {
			st, err := readMatrix(filepath.Join(dir, mv.Norm), 2, mv.Dim)
			if err != nil {
				return nil, err
			}
			v.Mean, v.Std = st[:mv.Dim], st[mv.Dim:]
		}
		d.Views = append(d.Views, v)
	}
	return d, nil
}

// readMatrix reads a rows×dim float matrix and rejects non-finite values.
func readMatrix(file string, rows, dim int) ([]float32, error) {
	x, n, d, err := ReadFeatures(file)
	if err != nil {
		return nil, err
	}
	if n != rows || d != dim {
		return nil, fmt.Errorf("%s: shape (%d, %d), want (%d, %d) as the manifest says (row counts must agree across views)", file, n, d, rows, dim)
	}
	return x, nil
}

// ReadFeatures reads an N×D matrix of finite features (float32, float16 or float64 NPY,
// also .npy.zst), D ≥ 1. x may be the mapped file itself: copy it before writing to it.
func ReadFeatures(file string) (x []float32, rows, dim int, err error) {
	a, err := ReadNPY(file)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(a.Shape) != 2 || a.Shape[1] < 1 {
		return nil, 0, 0, fmt.Errorf("%s: shape %v, want a matrix (N, D) of features, one row per example", file, a.Shape)
	}
	x, err = a.Float32s()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %v", file, err)
	}
	if err := checkFinite(file, x, a.Shape[1]); err != nil {
		return nil, 0, 0, err
	}
	return x, a.Shape[0], a.Shape[1], nil
}

func checkFinite(file string, x []float32, dim int) error {
	for i, v := range x {
		// Exponent all ones is Inf or NaN; one integer test per value keeps a
		// 200 MB view check well under a second.
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return fmt.Errorf("%s: row %d column %d is %v (features must be finite)", file, i/dim, i%dim, v)
		}
	}
	return nil
}

// Unknown is the train label of an example whose class nobody knows: truly unlabeled
// data. Such rows are always in the unlabeled pool (MakeSplit); test labels must be known.
const Unknown int32 = -1

// checkLabels checks labels against the class count; train labels may be Unknown.
func checkLabels(file string, y []int32, classes int, train bool) error {
	for i, c := range y {
		if c == Unknown && train {
			continue
		}
		if c < 0 || int(c) >= classes {
			hint := "train labels may also be -1 (unknown)"
			if !train {
				hint = "test labels must be known: they score the models"
			}
			return fmt.Errorf("%s: row %d: label %d is outside [0, %d) (the class count; %s)", file, i, c, classes, hint)
		}
	}
	return nil
}

func readManifest(dir string) (*manifest, error) {
	path := filepath.Join(dir, "manifest.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dataset directory %s: %w", dir, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &m, nil
}

// check validates the manifest on its own (files are checked when read).
func (m *manifest) check() error {
	if m.Format != manifestFormat {
		return fmt.Errorf("format: %q, want %q", m.Format, manifestFormat)
	}
	if m.Classes < 1 {
		return fmt.Errorf("classes: %d, want >= 1", m.Classes)
	}
	if len(m.ClassNames) != 0 && len(m.ClassNames) != m.Classes {
		return fmt.Errorf("class_names: %d names for %d classes", len(m.ClassNames), m.Classes)
	}
	for _, s := range splitNames {
		if m.Splits[s] < 1 {
			return fmt.Errorf("splits.%s: %d rows, want >= 1", s, m.Splits[s])
		}
		if err := localFile("labels."+s, m.Labels[s]); err != nil {
			return err
		}
	}
	if len(m.Splits) != len(splitNames) {
		return fmt.Errorf("splits: want exactly train and test, have %d entries", len(m.Splits))
	}
	seen := map[string]bool{}
	for i, v := range m.Views {
		if v.Name == "" || seen[v.Name] {
			return fmt.Errorf("views[%d].name: %q is empty or repeated", i, v.Name)
		}
		seen[v.Name] = true
		if v.Dim < 1 {
			return fmt.Errorf("views[%d].dim: %d, want >= 1", i, v.Dim)
		}
		for _, s := range splitNames {
			if err := localFile(fmt.Sprintf("views[%d].files.%s", i, s), v.Files[s]); err != nil {
				return err
			}
		}
		if v.Norm != "" {
			if err := localFile(fmt.Sprintf("views[%d].norm", i), v.Norm); err != nil {
				return err
			}
		}
	}
	return nil
}

// localFile rejects a file name that is missing or would leave the dataset directory.
func localFile(field, name string) error {
	if name == "" {
		return fmt.Errorf("%s: missing file name", field)
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) || strings.Contains(name, `\`) {
		return fmt.Errorf("%s: %q is outside the dataset directory (want a relative path without '..')", field, name)
	}
	return nil
}

// writeDir writes d as a dataset directory at out, atomically: everything goes to
// a temporary sibling directory that is renamed to out at the end, so an
// interrupted write leaves no out at all. out must not exist. With st.Compress
// each feature matrix is stored as .npy.zst when that saves at least a quarter;
// with st.Float16 as '<f2'.
func writeDir(out string, d *Dataset, st storage) error {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s already exists (remove it or choose another output directory)", out)
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	defer removeOnSignal(tmp)()
	// MkdirTemp's 0700 would keep colleagues on a shared cluster out of the dataset.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	m := manifest{
		Format: manifestFormat, Name: d.Name, Classes: d.Classes, ClassNames: d.ClassNames,
		Splits:     map[string]int{"train": len(d.TrainLabels), "test": len(d.TestLabels)},
		Labels:     map[string]string{"train": "labels-train.npy", "test": "labels-test.npy"},
		Provenance: d.Provenance,
	}
	for k, y := range [2][]int32{d.TrainLabels, d.TestLabels} {
		if err := WriteNPY(filepath.Join(tmp, m.Labels[splitNames[k]]), NewInt64([]int{len(y)}, y)); err != nil {
			return err
		}
	}
	used := map[string]bool{}
	for _, v := range d.Views {
		base := fileStem(v.Name)
		for used[base] {
			base += "_"
		}
		used[base] = true
		mv := manifestView{Name: v.Name, Dim: v.Dim, Params: v.Params, Files: map[string]string{}}
		for k, x := range [2][]float32{v.Train, v.Test} {
			split := splitNames[k]
			name, err := writeMatrix(tmp, base+"-"+split, []int{len(x) / v.Dim, v.Dim}, x, st)
			if err != nil {
				return err
			}
			mv.Files[split] = name
		}
		if v.Mean != nil {
			name, err := writeMatrix(tmp, base+"-norm", []int{2, v.Dim}, slices.Concat(v.Mean, v.Std), storage{})
			if err != nil {
				return err
			}
			mv.Norm = name
		}
		m.Views = append(m.Views, mv)
	}
	if err := m.check(); err != nil {
		return fmt.Errorf("write %s: %v", out, err)
	}
	b, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, "manifest.json"), append(b, '\n')); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

// removeOnSignal removes dir when SIGINT or SIGTERM arrives before the returned stop is
// called, then lets the signal end the process as it would have: Ctrl-C or a scheduler's
// SIGTERM during a long write leaves no half-written temporary directory (deferred
// cleanups do not run when a signal kills a process). A process that handles SIGTERM
// itself (mct train) is ended too, but only while a directory is being written, before
// any of its work could be checkpointed.
func removeOnSignal(dir string) (stop func()) {
	var catch []os.Signal
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		if !signal.Ignored(s) { // ignored (nohup, a background job): it cannot interrupt
			catch = append(catch, s)
		}
	}
	if len(catch) == 0 {
		return func() {}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, catch...)
	var mu sync.Mutex // held by a removal, which ends the process, or by stop
	stopped := false
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			mu.Lock()
			if !stopped {
				// Out of the writer's way first: files it creates from now on fail
				// instead of refilling dir while it is removed.
				if gone := dir + ".interrupted"; os.Rename(dir, gone) == nil {
					dir = gone
				}
				os.RemoveAll(dir)
			}
			raise(s)
		case <-done:
			select {
			case s := <-sigs: // came as the write ended: still the user's wish
				raise(s)
			default:
			}
		}
	}()
	return func() {
		mu.Lock() // a removal under way ends the process here
		stopped = true
		signal.Stop(sigs)
		mu.Unlock()
		close(done)
	}
}

// raise delivers s to this process with its default action, which ends it.
func raise(s os.Signal) {
	signal.Reset(s)
	if p, err := os.FindProcess(os.Getpid()); err != nil || p.Signal(s) != nil {
		os.Exit(1) // a platform that cannot signal itself
	}
	select {}
}

// storage says how writeDir stores feature matrices.
type storage struct{ Compress, Float16 bool }

// writeMatrix writes one feature matrix as stem.npy, or stem.npy.zst when
// compression is asked for and pays; it returns the file name.
func writeMatrix(dir, stem string, shape []int, x []float32, st storage) (string, error) {
	a := NewFloat32(shape, x)
	if st.Float16 {
		a = NewFloat16(shape, x)
	}
	name := stem + ".npy"
	if st.Compress {
		z := zstdEncode(npyHeader(a), a.Raw)
		if len(z) <= len(a.Raw)*3/4 {
			return name + ".zst", atomicfile.WriteFile(filepath.Join(dir, name+".zst"), z)
		}
	}
	return name, WriteNPY(filepath.Join(dir, name), a)
}

// fileStem turns a view name into a portable file name stem.
func fileStem(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
