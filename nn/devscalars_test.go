package nn

import "testing"

// TestPerUpdateScalarsOnDevice checks that the per-update values a recorded step reads from device
// memory (the dropout RNG step, Adam's step size and bias correction) give bit for bit
// the weights that passing them as arguments gives, over steps with a changing LR; and
// that a wrong value in either buffer does change them (both are really read).
func TestPerUpdateScalarsOnDevice(t *testing.T) {
	cfg := Config{Arch: "fcnn", In: 12, Classes: 4, Hidden: []int{16, 16, 16}, Dropout: 0.2}
	const n = 10
	// skewStep and skewLR falsify the device-side dropout step and Adam step size.
	train := func(device bool, skewStep uint32, skewLR float32) string {
		b := NewCPU()
		p, err := NewProbe(b, cfg, 7)
		if err != nil {
			t.Fatal(err)
		}
		tape, g, opt := p.NewTape(n, false), p.NewGrads(), NewAdam(p, 1e-2)
		host := make([]float64, n*cfg.In)
		for i := range host {
			host[i] = float64(i%7) - 3
		}
		x := upload(b, host)
		labels := labelsBuf(b, []int{0, 1, 2, 3, 0, 1, 2, 3, 0, 1})
		dz := b.Alloc(n * cfg.Classes)
		dyn := b.Alloc(3) // dropout step, Adam's two scalars
		for step := 0; step < 4; step++ {
			opt.LR = 1e-2 / float32(step+1)
			if device {
				s, c := opt.Scalars(1)
				b.Upload(dyn, []float32{IndexBits(uint32(p.NumBatchesTracked()+1) + skewStep), s * skewLR, c})
				p.DropoutStepAt = b.View(dyn, 0, 1)
			}
			z := p.Forward(tape, x, n, Train)
			CrossEntropy(b, z, n, cfg.Classes, labels, dz, 1)
			g.Zero()
			p.Backward(tape, dz, g)
			if device {
				opt.StepAt(g, b.View(dyn, 1, 2))
			} else {
				opt.Step(g)
			}
		}
		return p.Checksum()
	}
	want := train(false, 0, 1)
	if got := train(true, 0, 1); got != want {
		t.Errorf("weights with the step's scalars in device memory %s, as arguments %s", got, want)
	}
	if got := train(true, 1, 1); got == want {
		t.Errorf("a wrong dropout step in device memory left the weights unchanged: the buffer is not read")
	}
	if got := train(true, 0, 2); got == want {
		t.Errorf("a wrong Adam step size in device memory left the weights unchanged: the buffer is not read")
	}
}
