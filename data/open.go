package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DefaultViews are the views Open and Build use for a built-in dataset when none
// are named: the two strongest cheap views (and train's default pair).
var DefaultViews = []string{"hog", "gabor"}

// viewsVersion is part of the cache key of built views: bump it whenever a
// registered family changes its output for the same spec.
const viewsVersion = 2

// Options tune Open and Build.
type Options struct {
	// CacheDir holds built views of built-in datasets. Empty: $MCT_CACHE_DIR,
	// else $XDG_CACHE_HOME/mct, else ~/.cache/mct.
	CacheDir string
	// Progress, if set, is told how far a long stage ("build hog", ...) has got.
	Progress func(stage string, done, total int)
	// Compress makes Build store matrices as .npy.zst where that saves a quarter
	// (the cache never compresses: plain files are memory-mapped and shared by
	// every rank on a node through the page cache).
	Compress bool
	// Context, if set, stops building views once it is done: before the next view,
	// after each, and within a long family at its next committed piece of work (a
	// pretrained network's chunk of images), with an error that wraps its cause.
	// Views already built stay in the cache.
	Context context.Context
	// Float16 makes Build store features in IEEE half precision ('<f2'): half
	// the disk and about three significant digits, plenty for standardised
	// features; loading widens them to float32 (in memory, not mapped).
	Float16 bool
}

func (o Options) cacheDir() (string, error) { return CacheDir(o.CacheDir) }

func (o Options) context() context.Context {
	if o.Context == nil {
		return context.Background()
	}
	return o.Context
}

// stopped returns, once ctx is done, the error that stops the view builds.
func stopped(ctx context.Context, spec string) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("view %q: building stopped: %w", spec, context.Cause(ctx))
}

// CacheDir is where built views (and the pretrained networks' package) are kept:
// override when not empty, else $MCT_CACHE_DIR, else $XDG_CACHE_HOME/mct, else
// ~/.cache/mct.
func CacheDir(override string) (string, error) {
	if override != "" {
		return override, nil
	}
	if d := os.Getenv("MCT_CACHE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "mct"), nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set MCT_CACHE_DIR (%v)", err)
	}
	return filepath.Join(h, ".cache", "mct"), nil
}

// Open returns a dataset with the named views. spec is a built-in dataset name
// ("fashion-mnist", "mnist"), whose views are built from the images once and then
// loaded from the cache (DefaultViews when views is empty), or a dataset
// directory, whose named views are loaded (all when views is empty); a directory
// named like a built-in is reached as ./fashion-mnist.
func Open(spec string, views []string, opt Options) (*Dataset, error) {
	b, ok := builtins[spec]
	if !ok {
		if _, err := os.Stat(filepath.Join(spec, "manifest.json")); err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				return nil, fmt.Errorf("dataset %s: %w", spec, err) // there, but unreadable
			}
			names := slices.Sorted(maps.Keys(builtins))
			return nil, fmt.Errorf("dataset %q: neither a built-in (%s) nor a dataset directory with a manifest.json", spec, strings.Join(names, ", "))
		}
		return LoadDir(spec, views)
	}
	if len(views) == 0 {
		views = DefaultViews
	}
	src, err := b.locate()
	if err != nil {
		return nil, err
	}
	sums, key, err := sourceHashes(src)
	if err != nil {
		return nil, err
	}
	cache, err := opt.cacheDir()
	if err != nil {
		return nil, err
	}
	// viewsVersion in the key retires cache entries built by older family code.
	root := filepath.Join(cache, fmt.Sprintf("%s-%s-v%d", b.name, key[:16], viewsVersion))
	for _, v := range views { // every spec before building any, or leaving a lock file
		if _, _, err := lookupFamily(v); err != nil {
			return nil, err
		}
	}
	var raw *rawData
	var out *Dataset
	for _, v := range views {
		dir := filepath.Join(root, cacheEntry(v))
		d, err := LoadDir(dir, []string{v})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%v (cached view %q: remove %s to rebuild it)", err, v, dir)
		}
		if err != nil {
			getRaw := func() (*rawData, error) {
				if raw == nil {
					r, err := loadRaw(b, src)
					if err != nil {
						return nil, err
					}
					r.provenance = map[string]any{"source": src, "sha256": sums}
					raw = r
				}
				return raw, nil
			}
			if err := stopped(opt.context(), v); err != nil {
				return nil, err
			}
			if d, err = buildLocked(root, dir, b, getRaw, v, opt); err != nil {
				return nil, err
			}
			if err := stopped(opt.context(), v); err != nil {
				return nil, fmt.Errorf("%w (it is built and cached)", err)
			}
		}
		if out == nil {
			out = d
			out.Dir = root
			continue
		}
		if !slices.Equal(out.TrainLabels, d.TrainLabels) || !slices.Equal(out.TestLabels, d.TestLabels) {
			return nil, fmt.Errorf("%s: labels differ from the other cached views (stale cache: remove %s)", dir, root)
		}
		out.Views = append(out.Views, d.Views...)
	}
	return out, nil
}

// cacheEntry names the cache directory of a view spec: the spec itself when it
// is a safe file name, else its sanitised form plus a hash, so that specs which
// sanitise alike ("hog:cell=4", "hog_cell=4") never share an entry.
func cacheEntry(spec string) string {
	if s := fileStem(spec); s == spec {
		return s
	}
	h := sha256.Sum256([]byte(spec))
	return fileStem(spec) + "-" + hex.EncodeToString(h[:4])
}

// buildLocked builds a missing cache entry under an exclusive lock on
// dir+".lock", so that processes that want the same view at once (replicas of a
// view under mpirun, on one node) build it once: the others wait, then find the
// entry and load it. Where the lock is unavailable (some network file systems),
// every process builds and the atomic rename still keeps the entry whole.
func buildLocked(root, dir string, b builtin, getRaw func() (*rawData, error), spec string, opt Options) (*Dataset, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	unlock := lockFile(dir + ".lock")
	defer unlock()
	if d, err := LoadDir(dir, []string{spec}); err == nil {
		return d, nil // built by another process while we waited
	}
	raw, err := getRaw()
	if err != nil {
		return nil, err
	}
	if err := buildCached(dir, b, raw, spec, opt); err != nil {
		return nil, err
	}
	return LoadDir(dir, []string{spec})
}

// buildCached computes one view of a builtin and stores it as its own dataset
// directory; a concurrent builder (another rank) that wins the rename is fine.
func buildCached(dir string, b builtin, raw *rawData, spec string, opt Options) error {
	v, err := buildView(opt.context(), spec, raw.train, raw.test, opt.Progress)
	if err != nil {
		return err
	}
	v.Params["built"] = time.Now().UTC().Format(time.RFC3339)
	d := &Dataset{Name: b.name, Classes: len(b.classNames), ClassNames: b.classNames,
		Views: []View{v}, TrainLabels: raw.trainLabels, TestLabels: raw.testLabel, Provenance: raw.provenance}
	err = writeDir(dir, d, storage{})
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "manifest.json")); serr == nil {
			return nil
		}
	}
	return err
}

// buildView runs the family of spec over train and test images stacked, then
// standardises every column with the train split's mean and standard deviation.
func buildView(ctx context.Context, spec string, train, test Images, progress func(string, int, int)) (View, error) {
	f, args, err := lookupFamily(spec)
	if err != nil {
		return View{}, err
	}
	all := Images{N: train.N + test.N, H: train.H, W: train.W}
	all.Pix = slices.Concat(train.Pix, test.Pix)
	var p func(int, int)
	if progress != nil {
		p = func(done, total int) { progress("build "+spec, done, total) }
	}
	feat, err := f(ctx, args, all, p)
	if err != nil {
		return View{}, fmt.Errorf("view %q: %w", spec, err)
	}
	if feat.Dim < 1 || len(feat.Data) != all.N*feat.Dim {
		return View{}, fmt.Errorf("view %q: family returned %d values of dim %d for %d images", spec, len(feat.Data), feat.Dim, all.N)
	}
	if err := checkFinite("view "+spec, feat.Data, feat.Dim); err != nil {
		return View{}, err
	}
	v := View{Name: spec, Dim: feat.Dim, Params: feat.Params,
		Train: feat.Data[:train.N*feat.Dim], Test: feat.Data[train.N*feat.Dim:]}
	Standardize(&v)
	return v, nil
}

// Standardize subtracts the train mean and divides by the train standard
// deviation of every column of v.Train and v.Test, in place, recording both in v.
// Constant columns (std below 1e-6·(1+|mean|), e.g. always-black corner pixels)
// are only centred.
func Standardize(v *View) {
	d := v.Dim
	n := len(v.Train) / d
	sum := make([]float64, d)
	sq := make([]float64, d)
	for i := 0; i < n; i++ {
		row := v.Train[i*d : (i+1)*d]
		for j, x := range row {
			sum[j] += float64(x)
		}
	}
	v.Mean = make([]float32, d)
	v.Std = make([]float32, d)
	for j := range sum {
		sum[j] /= float64(n)
	}
	// Two passes (mean first) keep the variance accurate for features far from zero.
	for i := 0; i < n; i++ {
		row := v.Train[i*d : (i+1)*d]
		for j, x := range row {
			e := float64(x) - sum[j]
			sq[j] += e * e
		}
	}
	inv := make([]float64, d)
	for j := range sq {
		std := math.Sqrt(sq[j] / float64(n))
		if std < 1e-6*(1+math.Abs(sum[j])) {
			std = 1
		}
		v.Mean[j], v.Std[j] = float32(sum[j]), float32(std)
		inv[j] = 1 / std
	}
	for _, m := range [2][]float32{v.Train, v.Test} {
		for i := range m {
			j := i % d
			m[i] = float32((float64(m[i]) - sum[j]) * inv[j])
		}
	}
	if v.Params == nil {
		v.Params = map[string]any{}
	}
	v.Params["standardized"] = "per column, train mean and std"
}

// Build writes a dataset directory at out with the named views of spec (a
// built-in, built through the cache, or a dataset directory). out must not exist;
// it appears complete or not at all.
func Build(spec string, views []string, out string, opt Options) error {
	d, err := Open(spec, views, opt)
	if err != nil {
		return err
	}
	return writeDir(out, d, storage{Compress: opt.Compress, Float16: opt.Float16})
}

// Import makes a dataset directory at out from NPY files exported elsewhere
// (e.g. embeddings saved by PyTorch): views maps a view name to its train and
// test matrices (N×D floats), labels names the train and test label vectors
// (integers in [0, classes)). Features are standardised like built views.
func Import(views map[string][2]string, labels [2]string, classes int, out string) error {
	if len(views) == 0 {
		return fmt.Errorf("import: no views given")
	}
	if classes < 1 {
		return fmt.Errorf("import: classes = %d, want >= 1", classes)
	}
	d := &Dataset{Name: filepath.Base(out), Classes: classes,
		Provenance: map[string]any{"imported": time.Now().UTC().Format(time.RFC3339)}}
	files := map[string]any{}
	for k, path := range labels {
		a, err := ReadNPY(path)
		if err != nil {
			return err
		}
		if len(a.Shape) != 1 || a.Shape[0] == 0 {
			return fmt.Errorf("%s: shape %v, want a vector of labels (N,), N ≥ 1", path, a.Shape)
		}
		y, err := a.Int32s()
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		if err := checkLabels(path, y, classes, k == 0); err != nil {
			return err
		}
		if k == 0 {
			d.TrainLabels = y
		} else {
			d.TestLabels = y
		}
		files["labels-"+splitNames[k]] = path
	}
	for _, name := range slices.Sorted(maps.Keys(views)) {
		v := View{Name: name}
		for k, path := range views[name] {
			rows := len(d.TrainLabels)
			if k == 1 {
				rows = len(d.TestLabels)
			}
			x, n, dim, err := ReadFeatures(path)
			if err != nil {
				return err
			}
			if n != rows || (v.Dim != 0 && dim != v.Dim) {
				return fmt.Errorf("%s: shape (%d, %d), want (%d, D) matching the %s labels (and D equal for train and test)", path, n, dim, rows, splitNames[k])
			}
			v.Dim = dim
			// Copy: standardising in place must not touch a mapped input.
			x = slices.Clone(x)
			if k == 0 {
				v.Train = x
			} else {
				v.Test = x
			}
			files[name+"-"+splitNames[k]] = path
		}
		v.Params = map[string]any{"imported": true}
		Standardize(&v)
		d.Views = append(d.Views, v)
	}
	d.Provenance["files"] = files
	return writeDir(out, d, storage{})
}

// Describe summarises a dataset directory for people (`mct data info`).
func Describe(dir string) (string, error) {
	m, err := readManifest(dir)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "dataset %s (%s)\n", m.Name, dir)
	fmt.Fprintf(&s, "classes: %d", m.Classes)
	if len(m.ClassNames) > 0 {
		fmt.Fprintf(&s, " (%s)", strings.Join(m.ClassNames, ", "))
	}
	fmt.Fprintf(&s, "\nsplits: train %d rows, test %d rows\n", m.Splits["train"], m.Splits["test"])
	if a, err := ReadNPY(filepath.Join(dir, m.Labels["train"])); err == nil {
		if y, err := a.Int32s(); err == nil {
			unknown := 0
			for _, c := range y {
				if c == Unknown {
					unknown++
				}
			}
			fmt.Fprintf(&s, "train labels: %d known, %d unknown (-1)\n", len(y)-unknown, unknown)
		}
	}
	s.WriteString("views:\n")
	for _, v := range m.Views {
		size := int64(0)
		for _, f := range v.Files {
			if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
				size += st.Size()
			}
		}
		var ps []string
		for _, k := range slices.Sorted(maps.Keys(v.Params)) {
			ps = append(ps, fmt.Sprintf("%s=%v", k, v.Params[k]))
		}
		fmt.Fprintf(&s, "  %-24s dim %5d  %7.1f MB  %s\n", v.Name, v.Dim, float64(size)/1e6, strings.Join(ps, " "))
	}
	if len(m.Provenance) > 0 {
		s.WriteString("provenance:\n")
		for _, k := range slices.Sorted(maps.Keys(m.Provenance)) {
			v := m.Provenance[k]
			if _, plain := v.(string); !plain {
				if b, err := json.Marshal(v); err == nil {
					v = string(b)
				}
			}
			fmt.Fprintf(&s, "  %s: %v\n", k, v)
		}
	}
	return s.String(), nil
}
