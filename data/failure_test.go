package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportedDirReadable: a dataset directory is readable by others (0755, its files
// 0644) like any directory a user makes, so colleagues on a cluster can train on it
// (os.MkdirTemp, which it is first written in, makes 0700).
func TestImportedDirReadable(t *testing.T) {
	src := t.TempDir()
	w := func(name string, a *Array) string {
		p := filepath.Join(src, name)
		if err := WriteNPY(p, a); err != nil {
			t.Fatal(err)
		}
		return p
	}
	x := w("x.npy", NewFloat32([]int{3, 2}, []float32{1, 2, 3, 4, 5, 7}))
	y := w("y.npy", NewInt64([]int{3}, []int32{0, 1, 0}))
	out := filepath.Join(t.TempDir(), "ds")
	if err := Import(map[string][2]string{"v": {x, x}}, [2]string{y, y}, 2, out); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: mode %v, want 0755", out, fi.Mode().Perm())
	}
}

// TestOpenUnreadableManifest: a manifest.json that is there but cannot be read is that
// error, not "neither a built-in nor a dataset directory with a manifest.json" (which sent
// a user whose directory another user could not read looking for a missing file).
func TestOpenUnreadableManifest(t *testing.T) {
	dir := t.TempDir()
	// A link to itself: os.Stat fails with ELOOP, as root too (permissions do not stop root).
	if err := os.Symlink("manifest.json", filepath.Join(dir, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, nil, Options{})
	if err == nil || strings.Contains(err.Error(), "neither a built-in") || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("manifest.json that cannot be read: %v", err)
	}
	for _, spec := range []string{filepath.Join(dir, "absent"), filepath.Join(t.TempDir(), "")} {
		_, err := Open(spec, nil, Options{})
		if err == nil || !strings.Contains(err.Error(), "neither a built-in (fashion-mnist, mnist) nor a dataset directory with a manifest.json") {
			t.Errorf("%s: %v", spec, err)
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Open(file, nil, Options{}); err == nil || !strings.Contains(err.Error(), "neither a built-in") {
		t.Errorf("a file as the dataset: %v", err)
	}
}
