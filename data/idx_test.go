package data

import (
	"bytes"
	"compress/gzip"
	"slices"
	"strings"
	"testing"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestIDX(t *testing.T) {
	img := append([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	for _, b := range [][]byte{img, gz(img)} {
		x, err := DecodeIDX("x", b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x.Dims, []int{2, 2, 3}) || x.Data[11] != 12 {
			t.Fatalf("dims %v data %v", x.Dims, x.Data)
		}
	}
	corrupt := gz(img)
	corrupt[len(corrupt)-5] ^= 0xff // damage the CRC trailer
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", []byte{0, 0}, "magic: file too short"},
		{"magic", append([]byte{1, 2, 8, 1}, img[4:]...), "are not IDX"},
		{"type", []byte{0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0}, "element type 0x0d not supported"},
		{"ndims", []byte{0, 0, 8, 0}, "0 dimensions"},
		{"truncated dims", img[:9], "dimension 1: file truncated"},
		{"truncated data", img[:20], "need 12 bytes, file has 4"},
		{"gzip truncated", gz(img)[:20], "truncated"},
		{"extra", append(append([]byte{}, img...), 0), "bytes after the 12"},
		{"huge", []byte{0, 0, 8, 2, 0x7f, 0, 0, 0, 0x7f, 0, 0, 0}, "too large"},
		{"crc", corrupt, "gzip"},
	} {
		_, err := DecodeIDX("bad.idx", tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "bad.idx: ") {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestIDXRealFashionMNIST(t *testing.T) {
	dir := fashionMNISTDir(t)
	y, err := ReadIDX(dir + "/t10k-labels-idx1-ubyte.gz")
	if err != nil {
		t.Fatal(err)
	}
	// Known facts of the official file: 10000 labels, 1000 per class, first labels 9 2 1 1 6.
	if !slices.Equal(y.Dims, []int{10000}) || !bytes.Equal(y.Data[:5], []byte{9, 2, 1, 1, 6}) {
		t.Fatalf("dims %v first %v", y.Dims, y.Data[:5])
	}
	var n [10]int
	for _, c := range y.Data {
		n[c]++
	}
	for c, k := range n {
		if k != 1000 {
			t.Errorf("class %d: %d test labels, want 1000", c, k)
		}
	}
}

func FuzzIDX(f *testing.F) {
	f.Add([]byte{0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9})
	f.Add(gz([]byte{0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 2, 1, 2}))
	f.Add([]byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeIDX("fuzz", b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		n := 1
		for _, d := range x.Dims {
			n *= d
		}
		if n != len(x.Data) {
			t.Fatalf("dims %v but %d bytes", x.Dims, len(x.Data))
		}
	})
}
