package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestImportedDirReadable: a dataset directory is readable by others (0755, its files
// 0644) like any directory a user makes, so colleagues on a cluster can train on it
// (os.MkdirTemp, which it is first written in, makes 0700).
func TestImportedDirReadable(t *testing.T) {
	src := t.TempDir()
	w := npyWriter(t, src)
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

// removeOnSignalEnv makes the test binary, started by TestInterruptedWriteLeavesNothing,
// the process that is interrupted while it writes the directory the variable names.
const removeOnSignalEnv = "MCT_TEST_REMOVE_ON_SIGNAL"

// TestInterruptedWriteLeavesNothing: SIGTERM or Ctrl-C while a dataset directory is
// being written removes the temporary directory (mct data import of large embeddings
// left a hidden .NAME.tmp directory of their size) and still ends the process by that
// signal.
func TestInterruptedWriteLeavesNothing(t *testing.T) {
	if v := os.Getenv(removeOnSignalEnv); v != "" {
		num, dir, _ := strings.Cut(v, ":")
		n, _ := strconv.Atoi(num)
		removeOnSignal(dir)
		syscall.Kill(os.Getpid(), syscall.Signal(n))
		time.Sleep(10 * time.Second) // the signal ends the process first
		os.Exit(0)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		if signal.Ignored(sig) { // inherited by the child too (this test runs in the background)
			continue
		}
		dir := filepath.Join(t.TempDir(), ".ds.tmp123")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "x.npy"), []byte("partial"), 0o644)
		cmd := exec.Command(os.Args[0], "-test.run=^TestInterruptedWriteLeavesNothing$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%s", removeOnSignalEnv, sig, dir))
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != sig {
			t.Errorf("the process interrupted by %v: %v, want it ended by that signal", sig, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after %v: %v, want it removed", dir, sig, err)
		}
	}
}

// TestImportEmptySplit: a split without examples is named by its labels file (it was
// "write ds: splits.train: 0 rows", a field of a manifest the user never wrote).
func TestImportEmptySplit(t *testing.T) {
	src := t.TempDir()
	w := npyWriter(t, src)
	x := w("x.npy", NewFloat32([]int{2, 1}, []float32{1, 2}))
	y := w("y.npy", NewInt64([]int{2}, []int32{0, 1}))
	x0 := w("x0.npy", NewFloat32([]int{0, 1}, nil))
	y0 := w("y0.npy", NewInt64([]int{0}, nil))
	for k, labels := range [][2]string{{y0, y}, {y, y0}} {
		views := [2]string{x0, x}
		if k == 1 {
			views = [2]string{x, x0}
		}
		err := Import(map[string][2]string{"v": views}, labels, 2, filepath.Join(t.TempDir(), "ds"))
		if err == nil || !strings.Contains(err.Error(), y0+": shape [0], want a vector of labels (N,), N ≥ 1") {
			t.Errorf("empty %s split: %v", splitNames[k], err)
		}
	}
}

// TestDtypeFixes: a matrix NumPy users write often but mct does not read (big-endian, int
// features, float labels) is refused with the one-line NumPy fix.
func TestDtypeFixes(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.npy")
	b := []byte("\x93NUMPY\x01\x00")
	h := "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1), }"
	h += strings.Repeat(" ", 128-10-len(h)-1) + "\n"
	b = append(append(append(b, byte(len(h)), 0), h...), 0x3f, 0x80, 0, 0)
	if err := os.WriteFile(big, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ints := filepath.Join(dir, "ints.npy")
	floats := filepath.Join(dir, "floats.npy")
	if err := WriteNPY(ints, NewInt64([]int{1, 1}, []int32{3})); err != nil {
		t.Fatal(err)
	}
	if err := WriteNPY(floats, NewFloat32([]int{1}, []float32{3})); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := ReadFeatures(big)
	if err == nil || !strings.Contains(err.Error(), `">f4" is big-endian, not supported (want little-endian: save x.astype(x.dtype.newbyteorder('<')))`) {
		t.Errorf("big-endian: %v", err)
	}
	_, _, _, err = ReadFeatures(ints)
	if err == nil || !strings.Contains(err.Error(), "save x.astype(np.float32)") {
		t.Errorf("int features: %v", err)
	}
	a, err := ReadNPY(floats)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Int32s(); err == nil || !strings.Contains(err.Error(), "save y.astype(np.int64)") {
		t.Errorf("float labels: %v", err)
	}
}

// TestNotNPYSaysWhat: the files PyTorch users most often pass instead of an NPY (torch.save's
// zip or pickle, np.savez) are named for what they are, with the np.save that makes one.
func TestNotNPYSaysWhat(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		head []byte
		want string
	}{
		{[]byte("PK\x03\x04rest of a zip"), "a zip archive (np.savez, torch.save), not an NPY file: write the matrix with np.save(path, x)"},
		{[]byte("\x80\x02pickle bytes"), "a pickle (torch.save, pickle.dump), not an NPY file: mct never unpickles"},
		{[]byte("plain text, long enough"), "magic: not an NPY file"},
	} {
		p := filepath.Join(dir, "x.npy")
		if err := os.WriteFile(p, c.head, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadNPY(p); err == nil || !strings.Contains(err.Error(), p+": magic: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.head, err, c.want)
		}
	}
}
