package data

import (
	"context"
	"fmt"
)

func init() {
	RegisterFamily(FamilyInfo{Name: "lbp", Defaults: "grid=4", About: "histograms of uniform local binary patterns over a grid×grid partition (944 values on 28×28)"}, lbpFamily)
}

// lbpUniform maps an 8-bit local binary pattern to its bin: the 58 "uniform"
// patterns (at most two 0/1 transitions around the circle) get bins 0..57, all
// others share bin 58 (Ojala, Pietikäinen, Mäenpää, PAMI 2002).
var lbpUniform = func() [256]uint8 {
	var m [256]uint8
	next := uint8(0)
	for p := 0; p < 256; p++ {
		rot := (p>>1 | p<<7) & 0xff
		trans := 0
		for x := p ^ rot; x != 0; x &= x - 1 {
			trans++
		}
		if trans <= 2 {
			m[p] = next
			next++
		} else {
			m[p] = 58
		}
	}
	return m
}()

// lbpFamily is the histogram of uniform local binary patterns (8 neighbours at
// radius 1) over a grid×grid partition of the image interior, each histogram
// normalised to sum to one. Default grid 4 gives 16·59 = 944 values.
func lbpFamily(_ context.Context, args string, im Images, progress func(done, total int)) (Features, error) {
	a, err := ParseSpecArgs(args)
	if err != nil {
		return Features{}, err
	}
	grid, err := a.Int("grid", 4, 1, 8)
	if err != nil {
		return Features{}, err
	}
	if err := a.Done(); err != nil {
		return Features{}, err
	}
	ih, iw := im.H-2, im.W-2
	if ih < grid || iw < grid {
		return Features{}, fmt.Errorf("%d×%d images are too small for a %d×%d grid", im.H, im.W, grid, grid)
	}
	const bins = 59
	dim := grid * grid * bins
	out := make([]float32, im.N*dim)
	// Neighbours clockwise from the top-left, so rotations of a pattern are bit rotations.
	dy := [8]int{-1, -1, -1, 0, 1, 1, 1, 0}
	dx := [8]int{-1, 0, 1, 1, 1, 0, -1, -1}
	ParallelRows(im.N, func() []int { return make([]int, grid*grid) }, func(i int, count []int) {
		clear(count)
		p := im.Image(i)
		dst := out[i*dim : (i+1)*dim]
		for y := 1; y <= ih; y++ {
			for x := 1; x <= iw; x++ {
				c := p[y*im.W+x]
				code := 0
				for k := 0; k < 8; k++ {
					if p[(y+dy[k])*im.W+x+dx[k]] >= c {
						code |= 1 << k
					}
				}
				cell := ((y-1)*grid/ih)*grid + (x-1)*grid/iw
				dst[cell*bins+int(lbpUniform[code])]++
				count[cell]++
			}
		}
		for cell, n := range count {
			for b := 0; b < bins; b++ {
				dst[cell*bins+b] /= float32(n)
			}
		}
	}, progress)
	return Features{Dim: dim, Data: out, Params: map[string]any{
		"grid": grid, "neighbours": 8, "radius": 1, "patterns": "uniform (59 bins)", "histogram": "per cell, sums to 1",
	}}, nil
}
