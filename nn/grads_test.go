package nn

import (
	"fmt"
	"math"
	"testing"
)

// taped runs setup's probe of cfg forward on its 8 rows in mode, on a tape, and returns
// the gradient of the cross-entropy w.r.t. the logits, for Backward.
func taped(t *testing.T, cfg Config, mode Mode) (*CPU, *Probe, *Tape, Buf) {
	t.Helper()
	b, p, x, labels := setup(t, cfg, 8, 3)
	tape := p.NewTape(8, false)
	logits := p.Forward(tape, upload(b, x), 8, mode)
	dl := b.Alloc(8 * cfg.Classes)
	CrossEntropy(b, logits, 8, cfg.Classes, labelsBuf(b, labels), dl, 1)
	return b, p, tape, dl
}

// TestBackwardAfterZeroWrites: after Zero, Backward writes every gradient without
// reading the buffer (it held NaN), to the bit what it adds to a zeroed buffer, for
// every architecture in both modes; a second Backward then adds; and a zeroed
// gradient read before any Backward reads as zeros.
func TestBackwardAfterZeroWrites(t *testing.T) {
	for _, cfg := range []Config{
		{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}, Dropout: 0.2},
		{Arch: "mlp", In: 5, Classes: 3, Hidden: []int{6, 4}},
		{Arch: "linear", In: 5, Classes: 3},
	} {
		for _, mode := range []Mode{Train, Eval} {
			t.Run(fmt.Sprintf("%s/%s", cfg.Arch, map[Mode]string{Train: "train", Eval: "eval"}[mode]), func(t *testing.T) {
				b, p, tape, dl := taped(t, cfg, mode)
				nan := make([]float32, p.NumParams())
				for i := range nan {
					nan[i] = float32(math.NaN())
				}
				lazy, fresh := p.NewGrads(), p.NewGrads() // fresh: a zeroed buffer, added to
				lazy.Upload(nan)
				lazy.Zero()
				p.Backward(tape, dl, lazy)
				p.Backward(tape, dl, fresh)
				sameBits(t, "gradient written after Zero", hostOf(b, lazy.Flat()), hostOf(b, fresh.Flat()))
				p.Backward(tape, dl, lazy)
				p.Backward(tape, dl, fresh)
				sameBits(t, "second Backward after Zero", hostOf(b, lazy.Flat()), hostOf(b, fresh.Flat()))

				lazy.Upload(nan)
				lazy.Zero()
				sameBits(t, "zeroed gradient read", hostOf(b, lazy.Flat()), make([]float32, p.NumParams()))
			})
		}
	}
}

// TestStepClippedIsClipThenStep: StepClipped gives the bits of clipping the gradient in
// place (ClipGradNorm) and then stepping, with and without its scalars on the device,
// clipping and not, and leaves the gradient as it was.
func TestStepClippedIsClipThenStep(t *testing.T) {
	cfg := Config{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}}
	b, p, tape, dl := taped(t, cfg, Train)
	q, _ := NewProbe(b, cfg, 3)
	if err := q.LoadState(must(p.SaveState())); err != nil {
		t.Fatal(err)
	}
	g := p.NewGrads()
	p.Backward(tape, dl, g)
	gq := q.NewGrads()
	norm := math.Sqrt(b.Dot(g.Flat(), g.Flat(), g.Len()))
	optP, optQ := NewAdam(p, 0.01), NewAdam(q, 0.01)
	sched := b.Alloc(2)
	for step, maxNorm := range []float32{float32(norm / 3), float32(norm * 3), 0, float32(norm / 2)} {
		before := hostOf(b, g.Flat())
		gq.Upload(before)
		at := Buf(nil)
		if step%2 == 1 {
			s0, s1 := optP.Scalars(1)
			b.Upload(sched, []float32{s0, s1})
			at = sched
		}
		optP.StepClipped(g, maxNorm, at)
		if maxNorm > 0 {
			ClipGradNorm(b, gq, maxNorm)
		}
		optQ.StepAt(gq, at) // StepAt(nil) is Step
		sameBits(t, fmt.Sprintf("step %d (max norm %g of %g): weights", step+1, maxNorm, norm), hostOf(b, p.Flat()), hostOf(b, q.Flat()))
		sameBits(t, fmt.Sprintf("step %d: gradient left as it was", step+1), hostOf(b, g.Flat()), before)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestUploadAfterZero: an Upload after Zero replaces the pending clearing, so the next
// Backward adds to the uploaded values (a Backward that wrote over them would lose them).
func TestUploadAfterZero(t *testing.T) {
	cfg := Config{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}}
	b, p, tape, dl := taped(t, cfg, Train)
	h := make([]float32, p.NumParams())
	for i := range h {
		h[i] = float32(i%7) - 3
	}
	g, want := p.NewGrads(), p.NewGrads()
	g.Zero()
	g.Upload(h)
	p.Backward(tape, dl, g)
	want.Upload(h)
	p.Backward(tape, dl, want)
	sameBits(t, "Backward after Zero then Upload", hostOf(b, g.Flat()), hostOf(b, want.Flat()))
}
