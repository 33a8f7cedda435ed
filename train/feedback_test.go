package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"mct/data"
	"mct/nn"
)

// TestFeedbackSign checks the direction of the meta-feedback (steps 4–5 of the MCT
// step) on a toy problem with two views, both pretrained briefly on rows outside the
// batches; we watch view 0 as the teacher of view 1:
//
//   - helpful: view 0's pseudo-labels for view 1 equal the true labels of U; view 1
//     learning them lowers its labeled loss: h_1 > 0, and view 0's probability of
//     those pseudo-labels on U rises;
//   - harmful: everything view 0 sees is identical (weights, U, labeled batch, the
//     pseudo-labels it hands out), but view 1's labeled features are those of another
//     class, so learning the same pseudo-labels raises view 1's labeled loss: h_1 < 0;
//   - wrong: view 0 is pretrained on shifted labels (c+1), so its pseudo-labels are
//     wrong: h_1 < 0 and its probability of them falls.
//
// Between helpful and harmful only h_1 differs on view 0's side, so view 0 must end with
// a higher probability of its pseudo-labels in the helpful run: a flipped sign in the
// teacher step (or in h) reverses that.
func TestFeedbackSign(t *testing.T) {
	const C, dim, B, BL = 3, 4, 32, 12
	const pre = 120 // rows the views are pretrained on
	n := B + BL + pre
	rng := rand.New(rand.NewPCG(3, 4))
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(i % C)
	}
	// Gaussian clusters: class c around 3·e_c.
	cluster := func(c int32) []float32 {
		x := make([]float32, dim)
		for j := range x {
			x[j] = float32(0.5 * rng.NormFloat64())
		}
		x[c] += 3
		return x
	}
	var f0, f1, f1Swapped []float32
	for i, c := range labels {
		f0 = append(f0, cluster(c)...)
		a := cluster(c)
		f1 = append(f1, a...)
		if i >= B && i < B+BL {
			// Labeled rows of view 1 in the harmful run: features of class c+1.
			a[c] -= 3
			a[(c+1)%C] += 3
		}
		f1Swapped = append(f1Swapped, a...)
	}
	rows := func(lo, hi int) []int {
		r := make([]int, hi-lo)
		for i := range r {
			r[i] = lo + i
		}
		return r
	}
	plan := batchPlan{U: [][]int{rows(0, B)}, L: [][]int{rows(B, B+BL)}}
	cfg := Config{Arch: "fcnn", Hidden: []int{16, 16, 16}, Temperature: 1, Seed: 5, Batch: B, LabeledBatch: BL,
		MCTLR: 0.01, Clip: 1, PseudoT: 1, Hard: true}

	type outcome struct {
		h, pseudoAcc    []float64
		pBefore, pAfter float64 // view 0's mean probability of view 1's pseudo-labels on U
		yHat1           []float32
	}
	run := func(view1 []float32, shift int32) outcome {
		ds := &data.Dataset{Name: "toy", Classes: C, TrainLabels: labels, Views: []data.View{
			{Name: "a", Dim: dim, Train: f0}, {Name: "b", Dim: dim, Train: view1}}}
		var o outcome
		pretrain := func(r *rank) {
			sh := shift
			if r.view != 0 {
				sh = 0
			}
			// Ten steps of BL rows (the rank's labeled tape holds that many): right on
			// U, but not so confident that softmax − onehot, the teacher's output
			// gradient, vanishes.
			r.opt = nn.NewAdam(r.probe, 0.01)
			for s := range 10 {
				lo := B + BL + s*BL%pre
				r.supervisedUpdate(rows(lo, lo+BL), func(e int) int32 { return (labels[e] + sh) % C })
			}
		}
		measure := func(r *rank) {
			if r.view != 0 {
				return
			}
			zAll := make([]float32, 2*B*C)
			r.be.Download(zAll, r.zAll)
			y := make([]float32, 2*B)
			r.be.Download(y, r.yHat)
			o.yHat1 = y[B:]
			r.upload(r.xU, plan.U[0])
			after := make([]float32, B*C)
			r.be.Download(after, r.probe.Forward(r.tapeU, r.xU, B, nn.Train))
			o.pBefore = meanProb(zAll[:B*C], o.yHat1, C)
			o.pAfter = meanProb(after, o.yHat1, C)
		}
		runs := runSteps(t, cfg, ds, 1, plan, pretrain, measure)
		st := runs[0][0].Stats[0]
		o.h, o.pseudoAcc = st.H, []float64{st.PseudoHits[0] / float64(st.Known), st.PseudoHits[1] / float64(st.Known)}
		return o
	}

	helpful := run(f1, 0)
	harmful := run(f1Swapped, 0)
	wrong := run(f1, 1)
	t.Logf("helpful: h %v, pseudo-label acc %v, p(ŷ) %.5f → %.5f", helpful.h, helpful.pseudoAcc, helpful.pBefore, helpful.pAfter)
	t.Logf("harmful: h %v, pseudo-label acc %v, p(ŷ) %.5f → %.5f", harmful.h, harmful.pseudoAcc, harmful.pBefore, harmful.pAfter)
	t.Logf("wrong:   h %v, pseudo-label acc %v, p(ŷ) %.5f → %.5f", wrong.h, wrong.pseudoAcc, wrong.pBefore, wrong.pAfter)

	if helpful.pseudoAcc[1] != 1 || wrong.pseudoAcc[1] != 0 {
		t.Fatalf("setup: view 0's pseudo-labels for view 1 should be all right (helpful) and all wrong (wrong); accuracies %.3f and %.3f",
			helpful.pseudoAcc[1], wrong.pseudoAcc[1])
	}
	for i := range helpful.yHat1 {
		if helpful.yHat1[i] != harmful.yHat1[i] {
			t.Fatalf("setup: the helpful and harmful runs must hand view 1 the same pseudo-labels (row %d: %g vs %g)", i, helpful.yHat1[i], harmful.yHat1[i])
		}
	}
	if helpful.h[0] != harmful.h[0] || helpful.pBefore != harmful.pBefore {
		t.Fatalf("setup: view 0's side must be identical in the helpful and harmful runs (h_0 %g vs %g)", helpful.h[0], harmful.h[0])
	}
	if !(helpful.h[1] > 0) {
		t.Errorf("helpful: correct pseudo-labels gave view 1 h = %g, want > 0 (L_before − L_after)", helpful.h[1])
	}
	if !(harmful.h[1] < 0) {
		t.Errorf("harmful: pseudo-labels that raise view 1's labeled loss gave h = %g, want < 0", harmful.h[1])
	}
	if !(wrong.h[1] < 0) {
		t.Errorf("wrong: wrong pseudo-labels gave view 1 h = %g, want < 0", wrong.h[1])
	}
	if !(helpful.pAfter > helpful.pBefore) {
		t.Errorf("helpful: the teacher's probability of its correct pseudo-labels went %.6f → %.6f, want up", helpful.pBefore, helpful.pAfter)
	}
	if !(wrong.pAfter < wrong.pBefore) {
		t.Errorf("wrong: the teacher's probability of its wrong pseudo-labels went %.6f → %.6f, want down", wrong.pBefore, wrong.pAfter)
	}
	if !(helpful.pAfter > harmful.pAfter) {
		t.Errorf("the teacher ends with p(ŷ) %.6f after positive feedback and %.6f after negative feedback on the same pseudo-labels; want the first higher (sign of the teacher step)",
			helpful.pAfter, harmful.pAfter)
	}
}

// meanProb is the mean over rows of softmax(z)[y] for the n×c logits z.
func meanProb(z, y []float32, c int) float64 {
	var s float64
	n := len(y)
	for i := 0; i < n; i++ {
		row := z[i*c : (i+1)*c]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - m)
		}
		s += math.Exp(float64(row[int(y[i])])-m) / sum
	}
	return s / float64(n)
}
