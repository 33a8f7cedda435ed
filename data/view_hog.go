package data

import (
	"context"
	"fmt"
	"math"
)

func init() {
	RegisterFamily(FamilyInfo{Name: "hog", Defaults: "cell=4,block=2,bins=9", About: "histograms of oriented gradients over cell×cell-pixel cells, in L2-Hys-normalised blocks of block×block cells (1296 values on 28×28)"}, hogFamily)
}

// hogFamily is the histogram of oriented gradients of Dalal and Triggs (CVPR 2005):
// unsigned gradient orientation histograms over cell×cell-pixel cells (votes
// weighted by magnitude, split linearly between the two nearest bins), grouped in
// overlapping block×block-cell blocks (stride one cell) normalised by L2-Hys
// (L2, clip at 0.2, L2 again). Defaults (cell 4, block 2, 9 bins) on 28×28 give
// 6·6 blocks · 2·2 cells · 9 bins = 1296 values. On Fashion-MNIST with a logistic
// probe at 1000 labels, 4-pixel cells score 0.826 and 7-pixel cells (hog:cell=7,
// 324 values) 0.765; DESIGN.md's 0.820 is the former's regime.
func hogFamily(_ context.Context, args string, im Images, progress func(done, total int)) (Features, error) {
	a, err := ParseSpecArgs(args)
	if err != nil {
		return Features{}, err
	}
	cell, err1 := a.Int("cell", 4, 2, 64)
	block, err2 := a.Int("block", 2, 1, 8)
	bins, err3 := a.Int("bins", 9, 2, 36)
	for _, e := range []error{err1, err2, err3, a.Done()} {
		if e != nil {
			return Features{}, e
		}
	}
	cy, cx := im.H/cell, im.W/cell
	by, bx := cy-block+1, cx-block+1
	if by < 1 || bx < 1 {
		return Features{}, fmt.Errorf("%d×%d images hold %d×%d cells of %d pixels, too few for blocks of %d", im.H, im.W, cy, cx, cell, block)
	}
	dim := by * bx * block * block * bins
	out := make([]float32, im.N*dim)
	ParallelRows(im.N, func() []float64 { return make([]float64, cy*cx*bins) }, func(i int, hist []float64) {
		hogImage(im.Image(i), im.H, im.W, cell, block, bins, hist, out[i*dim:(i+1)*dim])
	}, progress)
	return Features{Dim: dim, Data: out, Params: map[string]any{
		"cell": cell, "block": block, "bins": bins, "norm": "L2-Hys", "clip": 0.2, "orientation": "unsigned",
	}}, nil
}

// hogImage writes the HOG descriptor of one image into dst; hist is scratch of cy·cx·bins.
func hogImage(p []uint8, h, w, cell, block, bins int, hist []float64, dst []float32) {
	clear(hist)
	cy, cx := h/cell, w/cell
	at := func(y, x int) float64 {
		y = min(max(y, 0), h-1)
		x = min(max(x, 0), w-1)
		return float64(p[y*w+x])
	}
	binWidth := math.Pi / float64(bins)
	for y := 0; y < cy*cell; y++ {
		for x := 0; x < cx*cell; x++ {
			gx := at(y, x+1) - at(y, x-1)
			gy := at(y+1, x) - at(y-1, x)
			mag := math.Hypot(gx, gy)
			if mag == 0 {
				continue
			}
			ang := math.Atan2(gy, gx)
			if ang < 0 {
				ang += math.Pi
			}
			// Bin centres at (k+0.5)·binWidth; split the vote between the two nearest.
			f := ang/binWidth - 0.5
			k0 := int(math.Floor(f))
			t := f - float64(k0)
			k1 := k0 + 1
			k0 = (k0 + bins) % bins
			k1 %= bins
			c := ((y/cell)*cx + x/cell) * bins
			hist[c+k0] += mag * (1 - t)
			hist[c+k1] += mag * t
		}
	}
	n := 0
	const eps = 1e-6
	blk := dst[:0]
	for byi := 0; byi+block <= cy; byi++ {
		for bxi := 0; bxi+block <= cx; bxi++ {
			start := n
			for yy := 0; yy < block; yy++ {
				for xx := 0; xx < block; xx++ {
					c := ((byi+yy)*cx + bxi + xx) * bins
					for k := 0; k < bins; k++ {
						blk = append(blk, float32(hist[c+k]))
						n++
					}
				}
			}
			l2hys(dst[start:n], eps)
		}
	}
}

// l2hys normalises v to unit L2 norm, clips at 0.2 and normalises again.
func l2hys(v []float32, eps float64) {
	norm := func() float64 {
		s := 0.0
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		return math.Sqrt(s + eps*eps)
	}
	n := norm()
	for i := range v {
		v[i] = float32(math.Min(float64(v[i])/n, 0.2))
	}
	n = norm()
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
}
