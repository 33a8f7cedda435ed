package data

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The PyTorch/NumPy oracle: Debian's python3-numpy and python3-torch live with
// /usr/bin/python3 (not the python3 first on PATH on some machines).
const systemPython = "/usr/bin/python3"

func runPython(t *testing.T, dir, script string) string {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		skipUnlessCI(t, "no /usr/bin/python3 (apt-get install python3-numpy python3-torch)")
	}
	cmd := exec.Command(systemPython, "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "No module named 'numpy'") || strings.Contains(string(out), "No module named 'torch'") {
		skipUnlessCI(t, "numpy or torch missing: apt-get install python3-numpy python3-torch")
	}
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}

// TestNPYFromNumPy reads files NumPy and PyTorch wrote, in every header version
// and dtype we support, and checks the values element by element.
func TestNPYFromNumPy(t *testing.T) {
	dir := t.TempDir()
	runPython(t, dir, `
import numpy as np, torch
from numpy.lib import format as F
a = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 7) / 8
np.save("f4.npy", a.astype("<f4"))
np.save("f2.npy", a.astype("<f2"))
np.save("f8.npy", a)
np.save("i8.npy", np.arange(-3, 7, dtype="<i8"))
np.save("i4.npy", np.arange(-3, 7, dtype="<i4"))
np.save("u1.npy", np.arange(250, 256, dtype="u1"))
np.save("scalar.npy", np.float32(2.5))
np.save("torch.npy", (torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25).numpy())
for v in [(1, 0), (2, 0), (3, 0)]:
    with open("v%d.npy" % v[0], "wb") as f:
        F.write_array(f, a.astype("<f4"), version=v)
np.save("fortran.npy", np.asfortranarray(a.astype("<f4")))
np.save("object.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
np.save("big.npy", a.astype(">f4"))
np.save("complex.npy", np.zeros(3, dtype=np.complex64))
`)
	want := make([]float32, 24)
	for i := range want {
		want[i] = (float32(i) - 7) / 8
	}
	for _, name := range []string{"f4.npy", "f2.npy", "f8.npy", "v1.npy", "v2.npy", "v3.npy"} {
		a, err := ReadNPY(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		x, err := a.Float32s()
		if err != nil || !slices.Equal(a.Shape, []int{2, 3, 4}) {
			t.Fatalf("%s: shape %v: %v", name, a.Shape, err)
		}
		for i := range want {
			if x[i] != want[i] { // all values are exact in half precision too
				t.Fatalf("%s[%d] = %v, want %v", name, i, x[i], want[i])
			}
		}
	}
	for name, want := range map[string][]int32{
		"i8.npy": {-3, -2, -1, 0, 1, 2, 3, 4, 5, 6}, "i4.npy": {-3, -2, -1, 0, 1, 2, 3, 4, 5, 6},
		"u1.npy": {250, 251, 252, 253, 254, 255},
	} {
		a, err := ReadNPY(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := a.Int32s()
		if err != nil || len(y) != len(want) {
			t.Fatalf("%s: %v %v", name, y, err)
		}
		for i := range y {
			if y[i] != want[i] {
				t.Fatalf("%s = %v, want %v", name, y, want)
			}
		}
	}
	s, err := ReadNPY(filepath.Join(dir, "scalar.npy"))
	if x, _ := s.Float32s(); err != nil || len(s.Shape) != 0 || x[0] != 2.5 {
		t.Fatalf("scalar: %v %v", s, err)
	}
	tt, err := ReadNPY(filepath.Join(dir, "torch.npy"))
	if x, _ := tt.Float32s(); err != nil || x[11] != 2.75 {
		t.Fatalf("torch: %v", err)
	}
	for name, msg := range map[string]string{
		"fortran.npy": "fortran_order: True is not supported",
		"object.npy":  "object dtype (pickled Python objects)",
		"big.npy":     `">f4" is big-endian, not supported (want little-endian: save x.astype(x.dtype.newbyteorder('<')))`,
		"complex.npy": `"<c8" is not supported`,
	} {
		_, err := ReadNPY(filepath.Join(dir, name))
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want %q", name, err, msg)
		}
	}
}

// TestNPYToNumPy writes every dtype with WriteNPY and
// has NumPy load and check them.
func TestNPYToNumPy(t *testing.T) {
	dir := t.TempDir()
	x := make([]float32, 24)
	for i := range x {
		x[i] = (float32(i) - 7) / 8
	}
	w := func(name string, a *Array) {
		if err := WriteNPY(filepath.Join(dir, name), a); err != nil {
			t.Fatal(err)
		}
	}
	w("f4.npy", NewFloat32([]int{2, 3, 4}, x))
	w("f2.npy", NewFloat16([]int{24}, x))
	w("i8.npy", NewInt64([]int{3}, []int32{-1, 0, 2147483647}))
	w("u1.npy", &Array{Shape: []int{2, 1}, Dtype: Uint8, Raw: []byte{7, 255}})
	w("empty.npy", NewFloat32([]int{0, 5}, nil))
	out := runPython(t, dir, `
import numpy as np
a = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 7) / 8
f4 = np.load("f4.npy"); assert f4.dtype == np.float32 and f4.shape == (2, 3, 4) and (f4 == a).all(), f4
assert f4.flags["C_CONTIGUOUS"]
f2 = np.load("f2.npy"); assert f2.dtype == np.float16 and (f2 == a.reshape(-1)).all(), f2
i8 = np.load("i8.npy"); assert i8.dtype == np.int64 and list(i8) == [-1, 0, 2147483647], i8
u1 = np.load("u1.npy"); assert u1.dtype == np.uint8 and u1.shape == (2, 1) and u1[1, 0] == 255
e = np.load("empty.npy"); assert e.shape == (0, 5)
print("numpy ok")
`)
	if !strings.Contains(out, "numpy ok") {
		t.Fatalf("numpy said: %s", out)
	}
}
