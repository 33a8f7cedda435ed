package data

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

func init() {
	RegisterFamily(FamilyInfo{Name: "randconv", Defaults: "filters=32,size=5,pool=4,seed=1", About: "one random convolutional layer (filters of size×size drawn from seed), rectified and pooled over a pool×pool grid (1024 values on 28×28)"}, randconvFamily)
}

// randconvFamily is a one-layer random convolutional network (Jarrett et al.
// 2009, Saxe et al. 2011: random filters with rectification and pooling are
// surprisingly strong features): filters size×size with Gaussian weights drawn
// from seed, each made zero-mean (so the response ignores local brightness) and
// unit-norm, applied to the valid positions; the positive and negative parts of
// every response are averaged over a pool×pool grid. Defaults (32 filters 5×5,
// 4×4 grid) on 28×28 give 32·2·16 = 1024 values.
func randconvFamily(_ context.Context, args string, im Images, progress func(done, total int)) (Features, error) {
	a, err := ParseSpecArgs(args)
	if err != nil {
		return Features{}, err
	}
	nf, err1 := a.Int("filters", 32, 1, 1024)
	size, err2 := a.Int("size", 5, 1, 15)
	pool, err3 := a.Int("pool", 4, 1, 16)
	seed, err4 := a.Uint64("seed", 1)
	for _, e := range []error{err1, err2, err3, err4, a.Done()} {
		if e != nil {
			return Features{}, e
		}
	}
	oh, ow := im.H-size+1, im.W-size+1
	if oh < pool || ow < pool {
		return Features{}, fmt.Errorf("%d×%d images leave %d×%d responses, too few for a %d×%d pool", im.H, im.W, oh, ow, pool, pool)
	}
	taps := size * size
	w := randomFilters(nf, taps, seed)
	dim := nf * 2 * pool * pool
	out := make([]float32, im.N*dim)
	npos := oh * ow
	type scratch struct{ patches, resp []float32 }
	newScratch := func() scratch {
		return scratch{make([]float32, npos*taps), make([]float32, npos*nf)}
	}
	ParallelRows(im.N, newScratch, func(i int, s scratch) {
		p := im.Image(i)
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				row := s.patches[(y*ow+x)*taps:]
				for u := 0; u < size; u++ {
					for v := 0; v < size; v++ {
						row[u*size+v] = float32(p[(y+u)*im.W+x+v]) / 255
					}
				}
			}
		}
		// resp (npos×nf) = patches (npos×taps) · wᵀ (taps×nf)
		blas32.Gemm(blas.NoTrans, blas.Trans, 1,
			blas32.General{Rows: npos, Cols: taps, Stride: taps, Data: s.patches},
			blas32.General{Rows: nf, Cols: taps, Stride: taps, Data: w},
			0, blas32.General{Rows: npos, Cols: nf, Stride: nf, Data: s.resp})
		dst := out[i*dim : (i+1)*dim]
		for y := 0; y < oh; y++ {
			cy := y * pool / oh
			for x := 0; x < ow; x++ {
				cell := cy*pool + x*pool/ow
				r := s.resp[(y*ow+x)*nf : (y*ow+x+1)*nf]
				for f, v := range r {
					if v > 0 {
						dst[(f*2)*pool*pool+cell] += v
					} else {
						dst[(f*2+1)*pool*pool+cell] -= v
					}
				}
			}
		}
		// Cells differ in size by at most one row or column; mean, not sum.
		for cy := 0; cy < pool; cy++ {
			rows := (cy+1)*oh/pool - cy*oh/pool
			for cx := 0; cx < pool; cx++ {
				cols := (cx+1)*ow/pool - cx*ow/pool
				inv := 1 / float32(rows*cols)
				for k := 0; k < 2*nf; k++ {
					dst[k*pool*pool+cy*pool+cx] *= inv
				}
			}
		}
	}, progress)
	return Features{Dim: dim, Data: out, Params: map[string]any{
		"filters": nf, "size": size, "pool": pool, "seed": seed,
		"weights": "gaussian, zero-mean, unit norm", "rectification": "positive and negative parts", "pooling": "mean",
	}}, nil
}

// randomFilters draws nf filters of taps weights (row-major nf×taps) from the
// counter-based generator: Box–Muller normals, then each filter centred and scaled
// to unit L2 norm.
func randomFilters(nf, taps int, seed uint64) []float32 {
	w := make([]float32, nf*taps)
	for f := 0; f < nf; f++ {
		g := make([]float64, taps)
		for t := range g {
			u1 := (float64(rand64(seed, uint64(f), uint64(2*t))>>11) + 0.5) / (1 << 53)
			u2 := float64(rand64(seed, uint64(f), uint64(2*t+1))>>11) / (1 << 53)
			g[t] = math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
		}
		var mean, norm float64
		for _, v := range g {
			mean += v / float64(taps)
		}
		for t := range g {
			g[t] -= mean
			norm += g[t] * g[t]
		}
		norm = math.Sqrt(norm)
		if taps == 1 || norm == 0 {
			norm = 1 // a 1×1 filter is constant after centring; leave it zero
		}
		for t, v := range g {
			w[f*taps+t] = float32(v / norm)
		}
	}
	return w
}
