package data

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testCountBuilds counts the builds of the family test-count.
var testCountBuilds atomic.Int64

func init() {
	RegisterFamily(FamilyInfo{Name: "test-count", About: "counts its builds; features all zero (1 values on 28×28)"}, func(_ context.Context, args string, im Images, progress func(done, total int)) (Features, error) {
		testCountBuilds.Add(1)
		return Features{Dim: 1, Data: make([]float32, im.N)}, nil
	})
}

// tinyBuiltin writes four small gzip IDX files (train 40, test 10 images of 6×6,
// 4 classes) and registers them as the built-in dataset "test-tiny", so cache
// behaviour can be tested in milliseconds.
func tinyBuiltin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	idx := func(name string, dims []int, data []byte) {
		b := []byte{0, 0, 8, byte(len(dims))}
		for _, d := range dims {
			b = binary.BigEndian.AppendUint32(b, uint32(d))
		}
		if err := os.WriteFile(filepath.Join(dir, name), gz(append(b, data...)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for k, n := range []int{40, 10} {
		img := make([]byte, n*36)
		lab := make([]byte, n)
		for i := range lab {
			lab[i] = byte(i % 4)
			for p := 0; p < 36; p++ {
				img[i*36+p] = byte((i*7 + p*int(lab[i]+1)) % 256)
			}
		}
		idx(idxFiles[2*k], []int{n, 6, 6}, img)
		idx(idxFiles[2*k+1], []int{n}, lab)
	}
	builtins["test-tiny"] = builtin{name: "test-tiny", classNames: []string{"a", "b", "c", "d"},
		locate: func() (string, error) { return dir, nil }}
	t.Cleanup(func() { delete(builtins, "test-tiny") })
	return dir
}

// TestCacheConcurrentBuilders runs several Opens of the same uncached views at
// once, as the ranks of an mpirun do: all must succeed with identical data and
// the cache must end with exactly one complete entry per view and no temporaries.
func TestCacheConcurrentBuilders(t *testing.T) {
	tinyBuiltin(t)
	testCountBuilds.Store(0)
	cache := t.TempDir()
	const ranks = 6
	got := make([]*Dataset, ranks)
	errs := make([]error, ranks)
	var wg sync.WaitGroup
	for r := 0; r < ranks; r++ {
		wg.Go(func() {
			got[r], errs[r] = Open("test-tiny", []string{"pixels", "lbp:grid=2", "test-count"}, Options{CacheDir: cache})
		})
	}
	wg.Wait()
	for r := 0; r < ranks; r++ {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		for k := range got[0].Views {
			a, b := got[0].Views[k], got[r].Views[k]
			if a.Name != b.Name || len(a.Train) != 40*a.Dim || !slices.Equal(a.Train, b.Train) || !slices.Equal(a.Test, b.Test) {
				t.Fatalf("rank %d view %s differs", r, a.Name)
			}
		}
	}
	roots, _ := os.ReadDir(cache)
	if len(roots) != 1 {
		t.Fatalf("cache roots %v", roots)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, roots[0].Name()))
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 3 || !strings.HasPrefix(names[0], "lbp_grid_2-") || names[1] != "pixels" || names[2] != "test-count" {
		t.Errorf("cache entries %v, want [lbp_grid_2-<hash> pixels test-count] and no temporaries", names)
	}
	if n := testCountBuilds.Load(); n != 1 {
		t.Errorf("%d concurrent Opens built the view %d times, want once (the others wait on the lock)", ranks, n)
	}
	// A changed source file is a different cache key: the stale entry is not used.
	dir, _ := builtins["test-tiny"].locate()
	raw, _ := os.ReadFile(filepath.Join(dir, idxFiles[3]))
	os.WriteFile(filepath.Join(dir, idxFiles[3]), gz(append(mustGunzip(t, raw)[:8], make([]byte, 10)...)), 0o644)
	d, err := Open("test-tiny", []string{"pixels"}, Options{CacheDir: cache})
	if err != nil || d.TestLabels[1] != 0 {
		t.Fatalf("after changing the test labels: %v %v", err, d.TestLabels)
	}
	if roots, _ := os.ReadDir(cache); len(roots) != 2 {
		t.Errorf("want a second cache root for the changed source, have %d", len(roots))
	}
}

// TestCacheInterruptedBuild leaves what a killed builder leaves (a temporary
// directory) and checks Open ignores it and builds the entry properly.
func TestCacheInterruptedBuild(t *testing.T) {
	tinyBuiltin(t)
	cache := t.TempDir()
	d, err := Open("test-tiny", []string{"pixels"}, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	root := d.Dir
	os.RemoveAll(filepath.Join(root, "pixels"))
	os.MkdirAll(filepath.Join(root, ".pixels.tmp123"), 0o755)
	os.WriteFile(filepath.Join(root, ".pixels.tmp123", "pixels-train.npy"), []byte("half"), 0o644)
	d, err = Open("test-tiny", []string{"pixels"}, Options{CacheDir: cache})
	if err != nil || len(d.View("pixels").Train) != 40*36 {
		t.Fatalf("rebuild after an interrupted build: %v", err)
	}
	// A damaged cache entry is reported, naming the file, not silently rebuilt.
	os.WriteFile(filepath.Join(root, "pixels", "pixels-test.npy"), []byte("\x93NUMPY junk"), 0o644)
	if _, err := Open("test-tiny", []string{"pixels"}, Options{CacheDir: cache}); err == nil || !strings.Contains(err.Error(), "pixels-test.npy") || !strings.Contains(err.Error(), "to rebuild it") {
		t.Errorf("damaged cache entry: %v", err)
	}
}

func mustGunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	x, err := DecodeIDX("x", b)
	if err != nil {
		t.Fatal(err)
	}
	hdr := []byte{0, 0, 8, byte(len(x.Dims))}
	for _, d := range x.Dims {
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(d))
	}
	return append(hdr, x.Data...)
}

// testStopCancel, when set, is called by the family test-stop as it builds: a signal
// arriving during a view build.
var (
	testStopCancel func()
	testStopBuilds atomic.Int64
)

func init() {
	RegisterFamily(FamilyInfo{Name: "test-stop", About: "calls testStopCancel as it builds; features all one (1 values on 28×28)"}, func(_ context.Context, args string, im Images, progress func(done, total int)) (Features, error) {
		testStopBuilds.Add(1)
		if testStopCancel != nil {
			testStopCancel()
		}
		f := Features{Dim: 1, Data: make([]float32, im.N)}
		for i := range f.Data {
			f.Data[i] = float32(i % 3)
		}
		return f, nil
	})
}

// TestOpenStops: a done Options.Context stops Open before it builds a view, and after
// the view it was building when the context ended (which stays cached); the next Open
// builds only what is missing.
func TestOpenStops(t *testing.T) {
	tinyBuiltin(t)
	cache := t.TempDir()
	signal := errors.New("SIGTERM")
	views := []string{"test-stop", "test-count"}

	testCountBuilds.Store(0)
	testStopBuilds.Store(0)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(signal)
	if _, err := Open("test-tiny", views, Options{CacheDir: cache, Context: ctx}); !errors.Is(err, signal) {
		t.Fatalf("Open with a done context: %v, want its cause %v", err, signal)
	}
	if n, m := testStopBuilds.Load(), testCountBuilds.Load(); n+m != 0 {
		t.Fatalf("a done context still built %d views", n+m)
	}

	ctx, cancel = context.WithCancelCause(context.Background())
	defer cancel(nil)
	testStopCancel = func() { cancel(signal) }
	defer func() { testStopCancel = nil }()
	_, err := Open("test-tiny", views, Options{CacheDir: cache, Context: ctx})
	if !errors.Is(err, signal) || !strings.Contains(err.Error(), `view "test-stop"`) || !strings.Contains(err.Error(), "built and cached") {
		t.Fatalf("Open stopped during a build: %v, want the cause after test-stop, cached", err)
	}
	if n, m := testStopBuilds.Load(), testCountBuilds.Load(); n != 1 || m != 0 {
		t.Fatalf("stopped during test-stop: built test-stop %d times and test-count %d, want 1 and 0", n, m)
	}

	testStopCancel = nil
	d, err := Open("test-tiny", views, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if n, m := testStopBuilds.Load(), testCountBuilds.Load(); n != 1 || m != 1 {
		t.Errorf("the next Open built test-stop %d times in all and test-count %d, want 1 and 1 (test-stop cached)", n, m)
	}
	if len(d.Views) != 2 || d.Views[0].Name != "test-stop" || d.Views[1].Name != "test-count" {
		t.Errorf("next Open's views: %+v", d.Views)
	}
}
