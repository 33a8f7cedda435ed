//go:build cgo

package kemu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mct/nn"
)

// edgeShapes are the launch shapes the conformance suite does not reach, for the
// row-wise kernels (column tiles of 256 times row chunks, a wave of 8·sms = 16 blocks
// here) and the column reductions (blocks of 8 columns × 128 rows):
//   - one row and one column: a single thread of a single block does everything;
//   - fewer rows than row chunks, with a second column tile of one column;
//   - more column tiles (17) than the wave, so the grid is one chunk of tiles;
//   - many rows in one column, a count that leaves a tail after the loop by 4;
//   - a width that is exactly one tile, and one that is 8k+1 (a reduction block
//     whose other 7 columns do not exist).
var edgeShapes = [][2]int{{1, 1}, {3, 257}, {5, 4097}, {70001, 3}, {37, 256}, {131, 9}}

func randBuf(r *rand.Rand, n int, lo, hi float32) nn.HostBuf {
	x := make(nn.HostBuf, n)
	for i := range x {
		x[i] = lo + (hi-lo)*r.Float32()
	}
	return x
}

// sameAs fails unless got equals want element by element: bit for bit when tol = 0,
// else within tol relative to max(1, |want|).
func sameAs(t *testing.T, what string, got, want nn.HostBuf, tol float64) {
	t.Helper()
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if tol == 0 && got[i] == want[i] || tol > 0 && math.Abs(g-w) <= tol*math.Max(1, math.Abs(w)) {
			continue
		}
		t.Errorf("%s: element %d of %d is %g, the CPU backend's %g", what, i, len(want), g, w)
		return
	}
}

// TestRowwiseEdges runs the row-wise kernels (copy_cols, fold_cols, unfold_cols,
// bias_lrelu, bn_normalize, bn_backward), in place where nn calls them so, on
// edgeShapes, against the CPU backend: the same float operations in the same order,
// so the results must be identical.
func TestRowwiseEdges(t *testing.T) {
	b, cpu := New(), nn.NewCPU()
	r := rand.New(rand.NewPCG(7, 11))
	for _, sh := range edgeShapes {
		rows, cols := sh[0], sh[1]
		name := fmt.Sprintf("%dx%d", rows, cols)
		w := min(cols, 5) // repeated columns of Fold/UnfoldCols
		off := cols - w
		for _, beta := range []float32{0, 1} {
			src := randBuf(r, rows*(cols+3), -2, 2)
			dst := randBuf(r, rows*(cols+5), -2, 2)
			want := append(nn.HostBuf(nil), dst...)
			b.CopyCols(dst, cols+5, 2, src, cols+3, 1, rows, cols, beta)
			cpu.CopyCols(want, cols+5, 2, src, cols+3, 1, rows, cols, beta)
			sameAs(t, fmt.Sprintf("CopyCols %s beta %g", name, beta), dst, want, 0)

			usrc := randBuf(r, rows*cols, -2, 2)
			udst := randBuf(r, rows*(cols+w), -2, 2)
			uwant := append(nn.HostBuf(nil), udst...)
			b.UnfoldCols(udst, cols+w, usrc, cols, rows, off, beta)
			cpu.UnfoldCols(uwant, cols+w, usrc, cols, rows, off, beta)
			sameAs(t, fmt.Sprintf("UnfoldCols %s beta %g", name, beta), udst, uwant, 0)
		}

		fsrc := randBuf(r, rows*(cols+w), -2, 2)
		fdst, fwant := make(nn.HostBuf, rows*cols), make(nn.HostBuf, rows*cols)
		b.FoldCols(fdst, cols, fsrc, cols+w, rows, off)
		cpu.FoldCols(fwant, cols, fsrc, cols+w, rows, off)
		sameAs(t, "FoldCols "+name, fdst, fwant, 0)

		bias := randBuf(r, cols, -1, 1)
		for _, bb := range []nn.HostBuf{bias, nil} {
			x := randBuf(r, rows*cols, -2, 2)
			want := append(nn.HostBuf(nil), x...)
			var bk, bc nn.Buf
			if bb != nil {
				bk, bc = bb, bb
			}
			b.AddBiasLeakyReLU(x, bk, rows, cols, 0.01)
			cpu.AddBiasLeakyReLU(want, bc, rows, cols, 0.01)
			sameAs(t, fmt.Sprintf("AddBiasLeakyReLU %s in place, bias %v", name, bb != nil), x, want, 0)
		}

		mean, vr := randBuf(r, cols, -0.5, 0.5), randBuf(r, cols, 0.1, 3)
		gamma, beta := randBuf(r, cols, 0.5, 1.5), randBuf(r, cols, -0.5, 0.5)
		x := randBuf(r, rows*cols, -2, 2)
		y, want := make(nn.HostBuf, rows*cols), make(nn.HostBuf, rows*cols)
		b.BNNormalize(y, cols, x, mean, vr, gamma, beta, rows, cols, 1e-5)
		cpu.BNNormalize(want, cols, x, mean, vr, gamma, beta, rows, cols, 1e-5)
		sameAs(t, "BNNormalize "+name, y, want, 0)
		xin := append(nn.HostBuf(nil), x...)
		b.BNNormalize(xin, cols, xin, mean, vr, gamma, beta, rows, cols, 1e-5)
		sameAs(t, "BNNormalize "+name+" in place", xin, want, 0)

		stats := randBuf(r, 2*cols+1, -3, 3)
		stats[2*cols] = float32(rows)
		dy := randBuf(r, rows*cols, -1, 1)
		dwant := make(nn.HostBuf, rows*cols)
		cpu.BNBackward(dwant, dy, x, mean, vr, gamma, stats, rows, cols, 1e-5, 0.2)
		b.BNBackward(dy, dy, x, mean, vr, gamma, stats, rows, cols, 1e-5, 0.2)
		sameAs(t, "BNBackward "+name+" in place", dy, dwant, 0)
	}
}

// TestColReduceEdges runs the column reductions (col_sums, bn_stats, bn_bwd_stats:
// blocks of 8 columns and a tree over 128 row partials) on edgeShapes against the CPU
// backend. Both sum in float64 and round once, in different orders, so they agree
// to float rounding; the row count slot stats[2·cols] must be exact.
func TestColReduceEdges(t *testing.T) {
	b, cpu := New(), nn.NewCPU()
	r := rand.New(rand.NewPCG(3, 5))
	for _, sh := range edgeShapes {
		rows, cols := sh[0], sh[1]
		name := fmt.Sprintf("%dx%d", rows, cols)
		x := randBuf(r, rows*cols, -2, 2)
		for _, beta := range []float32{0, 1} {
			dst := randBuf(r, cols, -1, 1)
			want := append(nn.HostBuf(nil), dst...)
			b.ColSums(dst, x, rows, cols, beta)
			cpu.ColSums(want, x, rows, cols, beta)
			sameAs(t, fmt.Sprintf("ColSums %s beta %g", name, beta), dst, want, 1e-6)
		}

		shift := randBuf(r, cols, -0.5, 0.5)
		st, swant := make(nn.HostBuf, 2*cols+1), make(nn.HostBuf, 2*cols+1)
		b.BNStats(st, x, shift, rows, cols)
		cpu.BNStats(swant, x, shift, rows, cols)
		sameAs(t, "BNStats "+name, st, swant, 1e-6)
		if st[2*cols] != float32(rows) {
			t.Errorf("BNStats %s: row count %g, want %d", name, st[2*cols], rows)
		}

		dy, mean, vr := randBuf(r, rows*cols, -1, 1), randBuf(r, cols, -0.5, 0.5), randBuf(r, cols, 0.1, 3)
		dg, db := randBuf(r, cols, -1, 1), randBuf(r, cols, -1, 1)
		dgw, dbw := append(nn.HostBuf(nil), dg...), append(nn.HostBuf(nil), db...)
		bst, bwant := make(nn.HostBuf, 2*cols+1), make(nn.HostBuf, 2*cols+1)
		b.BNBackwardStats(bst, dg, db, dy, x, mean, vr, rows, cols, 1e-5, 1)
		cpu.BNBackwardStats(bwant, dgw, dbw, dy, x, mean, vr, rows, cols, 1e-5, 1)
		sameAs(t, "BNBackwardStats "+name, bst, bwant, 1e-6)
		sameAs(t, "BNBackwardStats "+name+" dgamma", dg, dgw, 1e-6)
		sameAs(t, "BNBackwardStats "+name+" dbeta", db, dbw, 1e-6)
	}
}
