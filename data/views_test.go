package data

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func oneImage(f func(y, x int) uint8) Images {
	im := Images{N: 1, H: 28, W: 28, Pix: make([]uint8, 784)}
	for y := 0; y < 28; y++ {
		for x := 0; x < 28; x++ {
			im.Pix[y*28+x] = f(y, x)
		}
	}
	return im
}

// TestHOGEdges checks orientation binning on edges whose gradient direction is
// known: a vertical edge has gradient angle 0, which lies halfway between the
// centres of bins 8 (170°) and 0 (10°); a horizontal edge has angle 90°, the
// centre of bin 4.
func TestHOGEdges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		img   Images
		cellX bool // the edge crosses cell column 3 (else cell row 3)
		bins  []int
	}{
		{"vertical", oneImage(func(y, x int) uint8 { return map[bool]uint8{true: 200, false: 0}[x >= 14] }), true, []int{0, 8}},
		{"horizontal", oneImage(func(y, x int) uint8 { return map[bool]uint8{true: 200, false: 0}[y >= 14] }), false, []int{4}},
	} {
		f, err := hogFamily(context.Background(), "", tc.img, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Block (3,3) covers cells (3..4, 3..4); its first cell (3,3) holds the edge.
		blk := f.Data[(3*6+3)*36 : (3*6+3)*36+9]
		for k, v := range blk {
			want := 0.0
			for _, b := range tc.bins {
				if k == b {
					want = 1 / math.Sqrt(float64(2*len(tc.bins)))
				}
			}
			if math.Abs(float64(v)-want) > 1e-3 {
				t.Errorf("%s edge: block (3,3) cell (3,3) bin %d = %.4f, want %.4f (all: %v)", tc.name, k, v, want, blk)
			}
		}
		// A block away from the edge is empty: all zeros.
		for _, v := range f.Data[0:36] {
			if v != 0 {
				t.Fatalf("%s edge: block (0,0) not empty: %v", tc.name, f.Data[:36])
			}
		}
	}
}

func TestLBP(t *testing.T) {
	uniform := 0
	for p := 0; p < 256; p++ {
		if lbpUniform[p] < 58 {
			uniform++
		}
	}
	if uniform != 58 || lbpUniform[0b01010101] != 58 || lbpUniform[0] == lbpUniform[255] {
		t.Fatalf("uniform mapping: %d uniform patterns (want 58)", uniform)
	}
	// A flat image: every pixel's neighbours are >= the centre, code 255, one bin per cell holds 1.
	f, err := lbpFamily(context.Background(), "grid=2", oneImage(func(y, x int) uint8 { return 7 }), nil)
	if err != nil || f.Dim != 4*59 {
		t.Fatalf("dim %d: %v", f.Dim, err)
	}
	for c := 0; c < 4; c++ {
		for b := 0; b < 59; b++ {
			want := float32(0)
			if b == int(lbpUniform[255]) {
				want = 1
			}
			if f.Data[c*59+b] != want {
				t.Fatalf("cell %d bin %d = %v, want %v", c, b, f.Data[c*59+b], want)
			}
		}
	}
}

func TestFamilyArgs(t *testing.T) {
	im := oneImage(func(y, x int) uint8 { return uint8(x * y) })
	for _, tc := range []struct {
		spec string
		dim  int
		err  string
	}{
		{"hog:cell=7", 324, ""},
		{"hog:cell=7,block=1,bins=6", 4 * 4 * 6, ""},
		{"gabor:scales=1,orientations=4", 4 * 49, ""},
		{"randconv:filters=8,pool=2,seed=5", 8 * 2 * 4, ""},
		{"lbp:grid=1", 59, ""},
		{"pixels", 784, ""},
		{"hog:cells=7", 0, `view "hog:cells=7": unknown argument "cells" (this family takes: bins, block, cell)`},
		{"hog:cell=20", 0, `view "hog:cell=20": 28×28 images hold 1×1 cells of 20 pixels, too few for blocks of 2`},
		{"gabor:cell=3", 0, `view "gabor:cell=3": cell=3: want an even number`},
		{"randconv:seed=-1", 0, `view "randconv:seed=-1": seed=-1: want a non-negative integer`},
		{"lbp:grid", 0, `view "lbp:grid": argument "grid": want key=value`},
		{"pixels:x=1", 0, `view "pixels:x=1": unknown argument "x"`},
	} {
		// Through buildView, which names the view in a family's errors.
		v, err := buildView(context.Background(), tc.spec, im, Images{H: im.H, W: im.W}, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || v.Dim != tc.dim || len(v.Train) != v.Dim {
			t.Errorf("%s: dim %d (want %d), %v", tc.spec, v.Dim, tc.dim, err)
		}
	}
	// Different seeds give different random filters; the same seed the same ones.
	a, b := randomFilters(4, 25, 1), randomFilters(4, 25, 2)
	if slices.Equal(a, b) || !slices.Equal(a, randomFilters(4, 25, 1)) {
		t.Error("randconv filters do not follow the seed")
	}
}

// TestFamiliesDeterministicAcrossCores builds every family with 1 and with 2
// workers: the features must be bit-identical.
func TestFamiliesDeterministicAcrossCores(t *testing.T) {
	im := Images{N: 200, H: 28, W: 28, Pix: make([]uint8, 200*784)}
	for i := range im.Pix {
		im.Pix[i] = uint8(rand64(7, 0, uint64(i)))
	}
	for _, spec := range []string{"pixels", "hog", "gabor:scales=1", "randconv:filters=4", "lbp"} {
		f, args, err := lookupFamily(spec)
		if err != nil {
			t.Fatal(err)
		}
		build := func() Features {
			x, err := f(context.Background(), args, im, nil)
			if err != nil || len(x.Data) != im.N*x.Dim || x.Dim == 0 {
				t.Fatalf("%s: dim %d, %d values: %v", spec, x.Dim, len(x.Data), err)
			}
			return x
		}
		one, two := withProcs(1, build), withProcs(2, build)
		if !slices.Equal(one.Data, two.Data) {
			t.Errorf("%s: features depend on the number of cores", spec)
		}
	}
}

func withProcs(n int, f func() Features) Features {
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	return f()
}

// TestFamilyInfos holds `mct data views` to the code: every family says what it is, a
// spec with its documented defaults builds the very view its bare name builds, and the
// value count it gives for 28×28 images is the one it computes.
func TestFamilyInfos(t *testing.T) {
	im := Images{N: 3, H: 28, W: 28, Pix: make([]uint8, 3*784)}
	for i := range im.Pix {
		im.Pix[i] = uint8(rand64(9, 0, uint64(i)))
	}
	infos := FamilyInfos()
	if len(infos) != len(Families()) {
		t.Fatalf("%d descriptions for the families %v", len(infos), Families())
	}
	for _, info := range infos {
		build := func(spec string) Features {
			f, args, err := lookupFamily(spec)
			if err != nil {
				t.Fatal(err)
			}
			x, err := f(context.Background(), args, im, nil)
			if err != nil {
				t.Fatalf("%s: %v", spec, err)
			}
			return x
		}
		bare := build(info.Name)
		spec := info.Name
		if info.Defaults != "" {
			spec += ":" + info.Defaults
			if withDefaults := build(spec); withDefaults.Dim != bare.Dim || !slices.Equal(withDefaults.Data, bare.Data) {
				t.Errorf("%s and %s build different views: the documented defaults are not the defaults", info.Name, spec)
			}
		}
		if want := fmt.Sprintf("(%d values on 28×28)", bare.Dim); !strings.Contains(info.About, want) {
			t.Errorf("%s: %q does not say %s", info.Name, info.About, want)
		}
	}
}
