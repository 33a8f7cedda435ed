package data

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// npyBytes builds an NPY file by hand from a header dict and payload, so tests
// control every byte a writer could get wrong.
func npyBytes(major byte, dict string, payload []byte) []byte {
	var b bytes.Buffer
	b.Write(npyMagic)
	b.WriteByte(major)
	b.WriteByte(0)
	if major == 1 {
		binary.Write(&b, binary.LittleEndian, uint16(len(dict)))
	} else {
		binary.Write(&b, binary.LittleEndian, uint32(len(dict)))
	}
	b.WriteString(dict)
	b.Write(payload)
	return b.Bytes()
}

func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	x := []float32{0, 1, -2.5, float32(math.Pi), 1e-30, -65504}
	for _, tc := range []struct {
		name string
		a    *Array
		want []float32
	}{
		{"f4.npy", NewFloat32([]int{2, 3}, x), x},
		{"f4.npy.zst", NewFloat32([]int{3, 2}, x), x},
		{"f2.npy", NewFloat16([]int{6}, x), []float32{0, 1, -2.5, 3.140625, 0, -65504}},
	} {
		path := filepath.Join(dir, tc.name)
		if err := WriteNPY(path, tc.a); err != nil {
			t.Fatal(err)
		}
		got, err := ReadNPY(path)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Shape, tc.a.Shape) || got.Dtype != tc.a.Dtype {
			t.Fatalf("%s: shape %v dtype %s, want %v %s", tc.name, got.Shape, got.Dtype, tc.a.Shape, tc.a.Dtype)
		}
		f, err := got.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for i := range f {
			if f[i] != tc.want[i] {
				t.Errorf("%s[%d] = %v, want %v", tc.name, i, f[i], tc.want[i])
			}
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "f4.npy"))
	if hl := int(binary.LittleEndian.Uint16(raw[8:])); (10+hl)%64 != 0 || raw[10+hl-1] != '\n' {
		t.Errorf("header length %d: data not 64-byte aligned or header not ending in newline", hl)
	}
	// A version 2 header longer than 64 KiB (padding) is still read from a file.
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }" + strings.Repeat(" ", 70000) + "\n"
	long := filepath.Join(dir, "long.npy")
	os.WriteFile(long, npyBytes(2, dict, f32Bytes([]float32{1.5, -2})), 0o644)
	if a, err := ReadNPY(long); err != nil || a.Len() != 2 {
		t.Fatalf("long v2 header: %v", err)
	} else if f, _ := a.Float32s(); f[1] != -2 {
		t.Fatalf("long v2 header data %v", f)
	}
	lab := NewInt64([]int{3}, []int32{0, 9, 2147483647})
	p := filepath.Join(dir, "y.npy")
	if err := WriteNPY(p, lab); err != nil {
		t.Fatal(err)
	}
	got, err := ReadNPY(p)
	if err != nil {
		t.Fatal(err)
	}
	y, err := got.Int32s()
	if err != nil || y[0] != 0 || y[1] != 9 || y[2] != 2147483647 {
		t.Fatalf("labels %v %v", y, err)
	}
}

// TestNPYLargeIsMapped checks the mmap path: a file over the threshold reads back
// exactly, and writing to the returned slice does not change the file.
func TestNPYLargeIsMapped(t *testing.T) {
	n := mmapThreshold/4 + 17
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i % 1000)
	}
	path := filepath.Join(t.TempDir(), "big.npy")
	if err := WriteNPY(path, NewFloat32([]int{n}, x)); err != nil {
		t.Fatal(err)
	}
	a, err := ReadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := a.Float32s()
	if len(f) != n || f[n-1] != x[n-1] || f[12345] != x[12345] {
		t.Fatalf("mapped data differs")
	}
	f[0] = 42
	b, _ := ReadNPY(path)
	g, _ := b.Float32s()
	if g[0] != 0 {
		t.Fatalf("writing to the mapped slice changed the file: %v", g[0])
	}
}

func TestFloat16Conversion(t *testing.T) {
	for _, tc := range []struct {
		f float32
		h uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, // rounds up to +Inf
		{float32(math.Inf(-1)), 0xfc00}, {5.960464477539063e-08, 0x0001}, // smallest subnormal
		{2.9802322387695312e-08, 0},                     // exactly half of it: ties to even → 0
		{1.0009765625, 0x3c01}, {1.00048828125, 0x3c00}, // tie → even
		{6.097555160522461e-05, 0x03ff}, // largest subnormal
	} {
		if got := f32ToF16(tc.f); got != tc.h {
			t.Errorf("f32ToF16(%g) = %#04x, want %#04x", tc.f, got, tc.h)
		}
	}
	// Every finite half value survives a round trip through float32.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		if got := f32ToF16(f16ToF32(uint16(h))); got != uint16(h) && !(h == 0x8000 && got == 0x8000) {
			t.Fatalf("round trip of %#04x gives %#04x", h, got)
		}
	}
}

func TestNPYBadInput(t *testing.T) {
	f4 := make([]byte, 4*6)
	good := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "magic: not an NPY file"},
		{"wrong magic", append([]byte("PK\x03\x04zip!"), f4...), "magic: a zip archive (np.savez, torch.save), not an NPY file"},
		{"version", append(append([]byte{}, npyBytes(1, good, f4)[:6]...), 9, 0, 0, 0), "version: 9.0 not supported"},
		{"truncated data", npyBytes(1, good, f4[:20]), "needs 24 bytes, file has 20"},
		{"extra data", npyBytes(1, good, append(f4, 0, 0, 0, 0)), "needs 24 bytes, file has 28"},
		{"truncated header", npyBytes(1, good, nil)[:30], "runs past the end of the file"},
		{"fortran", npyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f4), "fortran_order: True is not supported"},
		{"object", npyBytes(1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", make([]byte, 16)), "object dtype"},
		{"big endian", npyBytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", f4), `descr: ">f4" is big-endian, not supported`},
		{"structured", npyBytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f4), "structured dtypes"},
		{"missing shape", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, }", f4), `key "shape" missing`},
		{"bad shape", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", f4), "shape: want a non-negative integer"},
		{"huge shape", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", f4), "too large"},
		{"unknown key", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", f4), `unknown key "x"`},
		{"not a dict", npyBytes(1, "cos(1)", f4), "want a dict"},
	} {
		_, err := DecodeNPY("bad.npy", tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "bad.npy: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line starting with the file and containing %q", tc.name, err, tc.want)
		}
	}
	// Versions 2 and 3 (4-byte header length) with a shape-() scalar and a 1-tuple.
	for _, major := range []byte{2, 3} {
		a, err := DecodeNPY("v.npy", npyBytes(major, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", make([]byte, 8)))
		if err != nil || a.Len() != 1 {
			t.Errorf("version %d scalar: %v", major, err)
		}
	}
	if _, err := (&Array{Shape: []int{1}, Dtype: Int64, Raw: make([]byte, 8)}).Float32s(); err == nil {
		t.Error("Float32s of an integer array must fail")
	}
	big := NewInt64([]int{1}, []int32{0})
	binary.LittleEndian.PutUint64(big.Raw, 1<<40)
	if _, err := big.Int32s(); err == nil || !strings.Contains(err.Error(), "does not fit int32") {
		t.Errorf("int64 overflow: %v", err)
	}
}

func FuzzNPY(f *testing.F) {
	f.Add(EncodeNPY(NewFloat32([]int{2, 2}, []float32{1, 2, 3, 4})))
	f.Add(EncodeNPY(NewInt64([]int{3}, []int32{1, 2, 3})))
	f.Add(npyBytes(2, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", []byte{1, 2, 3}))
	f.Add(npyBytes(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 1), }", []byte{0, 0x3c}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeNPY("fuzz.npy", b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if len(a.Raw) != a.Len()*a.Dtype.Size() {
			t.Fatalf("accepted %v %s with %d data bytes", a.Shape, a.Dtype, len(a.Raw))
		}
		// Whatever we accept, we write back in a form we read as the same array.
		b2 := EncodeNPY(a)
		a2, err := DecodeNPY("again.npy", b2)
		if err != nil || !slices.Equal(a2.Shape, a.Shape) || a2.Dtype != a.Dtype || !bytes.Equal(a2.Raw, a.Raw) {
			t.Fatalf("re-encoding changed the array: %v", err)
		}
		if _, err := a.Float32s(); err != nil {
			if _, err2 := a.Int32s(); err2 != nil && a.Dtype != Int64 {
				t.Fatalf("dtype %s neither float nor int: %v %v", a.Dtype, err, err2)
			}
		}
	})
}
