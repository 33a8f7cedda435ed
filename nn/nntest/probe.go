package nntest

import (
	"fmt"
	"math"
	"testing"

	"mct/nn"
)

// probe runs one MCT student step of each architecture on both backends from the same
// seed: the initial weights (exact), a Train forward (with dropout in two of them), the
// loss, the backward, the BatchNorm running statistics, an Eval forward on them, the
// clipping norm and an Adam step; then a second backward through the tape's kept
// weights, which must repeat the first bit for bit.
func (s *suite) probe(t *testing.T) {
	cases := []nn.Config{
		{Arch: "fcnn", In: 50, Classes: 10, Hidden: []int{64, 64, 64}, Temperature: 2},
		{Arch: "fcnn", In: 20, Classes: 5, Hidden: []int{32, 32, 32}, Dropout: 0.1, Temperature: 1.5},
		{Arch: "fcnn", In: 50, Classes: 10, Hidden: []int{32, 32, 32, 32}, Dropout: 0.2},
		{Arch: "mlp", In: 40, Classes: 7, Hidden: []int{48, 24}},
		{Arch: "linear", In: 30, Classes: 5},
	}
	const rows, lr = 37, 1e-2
	for i, cfg := range cases {
		name := fmt.Sprintf("%s%v", cfg.Arch, cfg.Hidden)
		if cfg.Dropout > 0 {
			name += fmt.Sprintf("-dropout%g", cfg.Dropout)
		}
		if cfg.Temperature > 0 {
			name += fmt.Sprintf("-T%g", cfg.Temperature)
		}
		t.Run(name, func(t *testing.T) {
			r := rng(12 + uint64(i))
			x, lab := randn(r, rows*cfg.In, 1), labels(r, rows, cfg.Classes)
			var grads, params [][]float32 // the backend's, then the CPU's
			s.both(t, func(d *side) {
				p, err := nn.NewProbe(d, cfg, 1234)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Free()
				d.keep("initial weights", exact, p.Flat())
				tape, eval, g := p.NewTape(rows, true), p.NewTape(rows, false), p.NewGrads()
				defer tape.Free()
				defer eval.Free()
				defer g.Free()
				X, L, dl := d.put(x), d.put(lab), d.alloc(rows*cfg.Classes)
				logits := p.Forward(tape, X, rows, nn.Train)
				d.keep("Train logits", loose, logits)
				loss := nn.CrossEntropy(d, logits, rows, cfg.Classes, L, dl, 1)
				if !(loss > 0) {
					t.Errorf("%s: cross-entropy %g, want > 0", d.Name(), loss)
				}
				d.keepHost("loss", loose, loss)
				g.Zero() // as before the second backward: the same products, so the same bits
				p.Backward(tape, dl, g)
				first := get(d, g.Flat())
				d.keepHost("grads", loose, first...)
				for _, q := range p.Buffers() {
					d.keep("BatchNorm "+q.Name, loose, q.W)
				}
				d.keep("Eval logits", loose, p.Forward(eval, X, rows, nn.Eval))
				d.keepHost("clip norm", loose, nn.ClipGradNorm(d, g, 0.5))
				opt := nn.NewAdam(p, lr)
				defer opt.Free()
				opt.Step(g)
				grads, params = append(grads, first), append(params, get(d, p.Flat()))
				g.Zero()
				p.Backward(tape, dl, g)
				same(t, d.Name()+": grads through the kept weights after the step", "first backward", get(d, g.Flat()), first,
					exact)
			})
			adamStep(t, params[0], params[1], grads[1], lr)
		})
	}
}

// adamStep compares the weights after the probe's Adam step. A first step from zero
// moments (no weight decay) moves each weight by lr·g/(|g|+ε), which is lr·sign(g)
// unless |g| is near ε: where the CPU's gradient lies within 100× the grads' tolerance
// of zero, the agreement of the gradients does not fix its sign (such a gradient is
// mostly float noise, which differs between backends), and the two steps may go
// opposite ways. There the weights need only agree within 2·lr; elsewhere within the
// usual tolerance.
func adamStep(t *testing.T, got, want, grad []float32, lr float64) {
	t.Helper()
	gScale, wScale := 0.0, 0.0
	for i := range want {
		gScale = math.Max(gScale, math.Abs(float64(grad[i])))
		wScale = math.Max(wScale, math.Abs(float64(want[i])))
	}
	worst, wi, wb := 0.0, -1, 0.0
	for i := range want {
		bound := loose * wScale
		if math.Abs(float64(grad[i])) <= 100*loose*gScale {
			bound += 2 * lr
		}
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		if d-bound > worst {
			worst, wi, wb = d-bound, i, bound
		}
	}
	if wi >= 0 {
		t.Errorf("weights after Adam[%d] = %.9g, CPU backend %.9g (error %.2e > %.2e, CPU gradient %.3g of scale %.3g)",
			wi, got[wi], want[wi], math.Abs(float64(got[wi])-float64(want[wi])), wb, grad[wi], gScale)
	}
}
