package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// setup makes a probe with non-trivial BN affine parameters and running statistics,
// an input batch and labels.
func setup(t *testing.T, cfg Config, n int, seed uint64) (*CPU, *Probe, []float64, []int) {
	t.Helper()
	b := NewCPU()
	p, err := NewProbe(b, cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, q := range p.Params() {
		switch {
		case len(q.Name) > 2 && q.Name[:2] == "bn" && q.Name[len(q.Name)-6:] == "weight":
			v := randNormal(rng, q.W.Len(), 0.3)
			for i := range v {
				v[i] += 1
			}
			b.Upload(q.W, to32(v))
		case len(q.Name) > 2 && q.Name[:2] == "bn":
			b.Upload(q.W, to32(randNormal(rng, q.W.Len(), 0.3)))
		}
	}
	for _, q := range p.Buffers() {
		v := randNormal(rng, q.W.Len(), 0.2)
		if q.Name[len(q.Name)-3:] == "var" {
			for i := range v {
				v[i] = 0.5 + math.Abs(v[i])
			}
		}
		b.Upload(q.W, to32(v))
	}
	x := randNormal(rng, n*p.cfg.In, 1)
	labels := make([]int, n)
	for i := range labels {
		labels[i] = rng.IntN(p.cfg.Classes)
	}
	return b, p, x, labels
}

// put returns a new buffer holding h.
func put(b Backend, h []float32) Buf {
	buf := b.Alloc(len(h))
	b.Upload(buf, h)
	return buf
}

// labelsBuf uploads class indices as float32, as the losses take them.
func labelsBuf(b Backend, labels []int) Buf {
	h := make([]float32, len(labels))
	for i, l := range labels {
		h[i] = float32(l)
	}
	return put(b, h)
}

func upload(b Backend, x []float64) Buf { return put(b, to32(x)) }

// dropoutMasks recomputes the masks a Train forward with counter `step` draws.
func dropoutMasks(p *Probe, n int, step uint32) map[int][]float64 {
	masks := map[int][]float64{}
	if p.cfg.Dropout == 0 {
		return masks
	}
	for i, bl := range p.blocks {
		if !bl.dropout {
			continue
		}
		key := RNGKey{Seed: p.seed, Step: step, Stream: StreamDropout + uint32(i)}
		m := make([]float64, n*bl.out)
		for r := 0; r < n; r++ {
			for c := 0; c < bl.out; c++ {
				if Uniform(key, uint32(r), uint32(c)) >= p.cfg.Dropout {
					m[r*bl.out+c] = 1 / float64(1-p.cfg.Dropout)
				}
			}
		}
		masks[i] = m
	}
	return masks
}

// TestProbeGradients checks forward values, running statistics, loss and every
// parameter gradient of each architecture against the float64 reference and its
// central differences.
func TestProbeGradients(t *testing.T) {
	cases := []Config{
		{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}, Temperature: 1.7},
		{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{3, 3, 3, 3}, Temperature: 0.8, Dropout: 0.3},
		{Arch: "mlp", In: 6, Classes: 4, Hidden: []int{5, 3}, Temperature: 1.3},
		{Arch: "mlp", In: 6, Classes: 4, Hidden: []int{5, 3}, Dropout: 0.25, Slope: 0.2},
		{Arch: "linear", In: 7, Classes: 3, Temperature: 2},
	}
	const n = 6
	for ci, cfg := range cases {
		for _, mode := range []Mode{Train, Eval} {
			t.Run(fmt.Sprintf("%s-%d-mode%d", cfg.Arch, ci, mode), func(t *testing.T) {
				b, p, x, labels := setup(t, cfg, n, uint64(11+ci))
				ref := refFromProbe(p)
				var masks map[int][]float64
				if mode == Train {
					masks = dropoutMasks(p, n, 1)
				}
				train := mode == Train
				wantLogits, wantBuf := ref.forward(x, n, train, masks)

				tape := p.NewTape(n+3, false)
				xb, lb := upload(b, x), labelsBuf(b, labels)
				logits := p.Forward(tape, xb, n, mode)
				got := make([]float32, n*p.cfg.Classes)
				b.Download(got, logits)
				closeTo(t, "logits", got, wantLogits, 1e-5, 1e-5)
				if train {
					for _, q := range p.Buffers() {
						closeTo(t, q.Name, to32(download64(b, q.W)), wantBuf[q.Name], 1e-6, 1e-5)
					}
				}

				wantLoss, dref := refCE(wantLogits, labels, p.cfg.Classes)
				dl := b.Alloc(n * p.cfg.Classes)
				loss := CrossEntropy(b, logits, n, p.cfg.Classes, lb, dl, 1)
				if math.Abs(float64(loss)-wantLoss) > 1e-5*(1+wantLoss) {
					t.Errorf("loss %g, want %g", loss, wantLoss)
				}
				closeTo(t, "dlogits", to32(download64(b, dl)), dref, 1e-7, 1e-5)

				g := p.NewGrads()
				p.Backward(tape, dl, g)
				const h = 1e-6
				for pi, q := range p.Params() {
					gv := download64(b, g.Bufs()[pi])
					fd := make([]float64, len(gv))
					w := ref.p[q.Name]
					for i := range w {
						old := w[i]
						w[i] = old + h
						lp, _ := ref.forward(x, n, train, masks)
						w[i] = old - h
						lm, _ := ref.forward(x, n, train, masks)
						w[i] = old
						a, _ := refCE(lp, labels, p.cfg.Classes)
						c, _ := refCE(lm, labels, p.cfg.Classes)
						fd[i] = (a - c) / (2 * h)
					}
					closeTo(t, "grad "+q.Name, to32(gv), fd, 2e-6, 1e-3)
				}
			})
		}
	}
}

// TestBackwardTwiceAccumulates: a second Backward on the same tape adds the same
// gradient again, so the tape's activations survive a backward.
func TestBackwardTwiceAccumulates(t *testing.T) {
	cfg := Config{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}, Dropout: 0.2}
	b, p, x, labels := setup(t, cfg, 8, 3)
	tape := p.NewTape(8, false)
	logits := p.Forward(tape, upload(b, x), 8, Train)
	dl := b.Alloc(8 * 3)
	CrossEntropy(b, logits, 8, 3, labelsBuf(b, labels), dl, 1)
	g1, g2 := p.NewGrads(), p.NewGrads()
	p.Backward(tape, dl, g1)
	p.Backward(tape, dl, g2)
	p.Backward(tape, dl, g2)
	a, c := download64(b, g1.Flat()), download64(b, g2.Flat())
	for i := range a {
		if math.Abs(2*a[i]-c[i]) > 1e-6*(1+math.Abs(c[i])) {
			t.Fatalf("grad[%d]: twice %g, once %g", i, c[i], a[i])
		}
	}
}

// TestKeepWeights: Backward through a keepWeights tape after an Adam step equals the
// backward at the old weights, while an ordinary tape sees the new ones.
func TestKeepWeights(t *testing.T) {
	for _, arch := range []string{"fcnn", "mlp", "linear"} {
		cfg := Config{Arch: arch, In: 5, Classes: 3, Hidden: []int{4, 4, 4}}
		b, p, x, labels := setup(t, cfg, 8, 5)
		xb, lb := upload(b, x), labelsBuf(b, labels)
		kept, plain := p.NewTape(8, true), p.NewTape(8, false)
		dl := b.Alloc(8 * 3)
		gBefore := p.NewGrads()
		logits := p.Forward(kept, xb, 8, Train)
		CrossEntropy(b, logits, 8, 3, lb, dl, 1)
		p.Backward(kept, dl, gBefore)
		// Same forward on a plain tape (running stats move, but Train mode ignores them).
		p.Forward(plain, xb, 8, Train)
		gPlainBefore := p.NewGrads()
		p.Backward(plain, dl, gPlainBefore)
		// Not to the bit: the second forward's BatchNorm sums are shifted by the moved
		// running mean.
		closeTo(t, arch+": kept-tape gradient before the step, against a plain tape's",
			hostOf(b, gBefore.Flat()), download64(b, gPlainBefore.Flat()), 1e-6, 1e-4)

		opt := NewAdam(p, 0.05)
		opt.Step(gBefore)

		gKept, gPlain := p.NewGrads(), p.NewGrads()
		p.Backward(kept, dl, gKept)
		p.Backward(plain, dl, gPlain)
		want, got, moved := download64(b, gBefore.Flat()), download64(b, gKept.Flat()), download64(b, gPlain.Flat())
		differs := false
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: kept-tape grad[%d] = %g after the step, %g before", arch, i, got[i], want[i])
			}
			differs = differs || moved[i] != want[i]
		}
		if !differs && arch != "linear" {
			t.Fatalf("%s: plain tape did not see the new weights (test would not detect a missing snapshot)", arch)
		}
	}
}

// TestDefaultShapes pins the traced reference FCNN shapes: fc1 2048→1024, fc2 3072→C.
func TestDefaultShapes(t *testing.T) {
	p, err := NewProbe(NewCPU(), Config{Arch: "fcnn", In: 784, Classes: 10}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"fc0.weight[1024 784]", "fc0.bias[1024]", "bn0.weight[1024]", "bn0.bias[1024]",
		"fc1.weight[1024 2048]", "fc1.bias[1024]", "bn1.weight[1024]", "bn1.bias[1024]",
		"fc2.weight[10 3072]", "fc2.bias[10]",
	}
	for i, q := range p.Params() {
		if got := fmt.Sprintf("%s%v", q.Name, q.Shape); i >= len(want) || got != want[i] {
			t.Fatalf("param %d = %s, want %v", i, got, want)
		}
	}
	if p.NumParams() != 784*1024+1024*4+2048*1024+3072*10+10+2*1024 {
		t.Fatalf("NumParams = %d", p.NumParams())
	}
	for _, bad := range []Config{
		{Arch: "fcnn", In: 4, Classes: 3, Hidden: []int{8, 4}},
		{Arch: "conv", In: 4, Classes: 3},
		{Arch: "mlp", In: 0, Classes: 3},
		{Arch: "mlp", In: 3, Classes: 3, Dropout: 1},
	} {
		if _, err := NewProbe(NewCPU(), bad, 1); err == nil {
			t.Errorf("NewProbe(%+v) accepted", bad)
		}
	}
}

// TestInitDistribution: PyTorch's default Linear init is U(−1/√fan_in, 1/√fan_in).
func TestInitDistribution(t *testing.T) {
	b := NewCPU()
	p, _ := NewProbe(b, Config{Arch: "mlp", In: 400, Classes: 10, Hidden: []int{300}}, 42)
	w := download64(b, p.Params()[0].W)
	bound := 1 / math.Sqrt(400)
	var s, s2 float64
	for _, v := range w {
		if math.Abs(v) > bound {
			t.Fatalf("weight %g outside ±%g", v, bound)
		}
		s += v
		s2 += v * v
	}
	n := float64(len(w))
	if math.Abs(s/n) > 5*bound/math.Sqrt(3*n) || math.Abs(s2/n-bound*bound/3) > 0.02*bound*bound {
		t.Fatalf("init mean %g var %g, want 0 and %g", s/n, s2/n, bound*bound/3)
	}
	q, _ := NewProbe(b, Config{Arch: "mlp", In: 400, Classes: 10, Hidden: []int{300}}, 42)
	if p.Checksum() != q.Checksum() {
		t.Fatal("same seed, different weights")
	}
	r, _ := NewProbe(b, Config{Arch: "mlp", In: 400, Classes: 10, Hidden: []int{300}}, 43)
	if p.Checksum() == r.Checksum() {
		t.Fatal("different seeds, same weights")
	}
}

// TestDataParallelReduce: two replicas with half the batch each, their BN sums
// all-reduced through Reduce and their gradients summed, match one probe on the
// whole batch (the trainer's data-parallel contract).
func TestDataParallelReduce(t *testing.T) {
	cfg := Config{Arch: "fcnn", In: 6, Classes: 4, Hidden: []int{5, 5, 5}, Dropout: 0.2}
	const n = 12
	b, whole, x, labels := setup(t, cfg, n, 21)
	state, _ := whole.SaveState()
	reps := [2]*Probe{}
	for i := range reps {
		reps[i], _ = NewProbe(b, cfg, 0)
		if err := reps[i].LoadState(state); err != nil {
			t.Fatal(err)
		}
		reps[i].DropoutRowBase = uint32(i * n / 2)
	}
	// A two-party all-reduce: each side sends its slice and adds the peer's.
	ch := [2]chan []float32{make(chan []float32, 1), make(chan []float32, 1)}
	for i := range reps {
		i := i
		reps[i].Reduce = func(h []float32) {
			ch[1-i] <- append([]float32(nil), h...)
			peer := <-ch[i]
			for k := range h {
				h[k] += peer[k]
			}
		}
	}
	// Whole batch.
	tape := whole.NewTape(n, false)
	logits := whole.Forward(tape, upload(b, x), n, Train)
	dl := b.Alloc(n * 4)
	CrossEntropy(b, logits, n, 4, labelsBuf(b, labels), dl, 1)
	gw := whole.NewGrads()
	whole.Backward(tape, dl, gw)
	wantLogits := download64(b, logits)

	half := n / 2
	grads := [2]*Grads{}
	gotLogits := make([][]float64, 2)
	done := make(chan int, 2)
	for i := range reps {
		go func(i int) {
			p := reps[i]
			tp := p.NewTape(half, false)
			xs := upload(b, x[i*half*6:(i+1)*half*6])
			lg := p.Forward(tp, xs, half, Train)
			d := b.Alloc(half * 4)
			// Gradient of the global mean loss: scale by half/n.
			CrossEntropy(b, lg, half, 4, labelsBuf(b, labels[i*half:(i+1)*half]), d, float32(half)/n)
			grads[i] = p.NewGrads()
			p.Backward(tp, d, grads[i])
			gotLogits[i] = download64(b, lg)
			done <- i
		}(i)
	}
	<-done
	<-done
	closeTo(t, "replica logits", to32(append(gotLogits[0], gotLogits[1]...)), wantLogits, 1e-6, 1e-5)
	sum := download64(b, grads[0].Flat())
	for i, v := range download64(b, grads[1].Flat()) {
		sum[i] += v
	}
	// Float32 cancellation in the BN backward (a column with a tiny variance here)
	// bounds the agreement relative to the gradient's scale, not per element.
	want := download64(b, gw.Flat())
	closeTo(t, "summed replica grads", to32(sum), want, 2e-5*maxAbs(want), 1e-4)
	for k, q := range whole.Buffers() {
		closeTo(t, "replica "+q.Name, to32(download64(b, reps[0].Buffers()[k].W)), download64(b, q.W), 1e-6, 1e-5)
	}
}

func TestStateRoundTrip(t *testing.T) {
	cfg := Config{Arch: "mlp", In: 5, Classes: 3, Hidden: []int{4}}
	b, p, x, _ := setup(t, cfg, 4, 8)
	p.Forward(p.NewTape(4, false), upload(b, x), 4, Train)
	s, err := p.SaveState()
	if err != nil {
		t.Fatal(err)
	}
	q, _ := NewProbe(b, cfg, 99)
	if err := q.LoadState(s); err != nil {
		t.Fatal(err)
	}
	if q.Checksum() != p.Checksum() || q.NumBatchesTracked() != 1 {
		t.Fatalf("round trip lost weights or counters")
	}
	if fmt.Sprint(download64(b, q.Buffers()[0].W)) != fmt.Sprint(download64(b, p.Buffers()[0].W)) {
		t.Fatal("round trip lost running statistics")
	}
	other, _ := NewProbe(b, Config{Arch: "mlp", In: 5, Classes: 3, Hidden: []int{6}}, 1)
	if err := other.LoadState(s); err == nil {
		t.Fatal("state loaded into a different architecture")
	}
	if err := q.LoadState(s[:len(s)-3]); err == nil {
		t.Fatal("truncated state accepted")
	}
	opt := NewAdam(p, 1e-3)
	g := p.NewGrads()
	b.Fill(g.Flat(), p.NumParams(), 0.5)
	opt.Step(g)
	as, _ := opt.SaveState()
	opt2 := NewAdam(q, 1)
	if err := opt2.LoadState(as); err != nil || opt2.Steps() != 1 || opt2.LR != 1e-3 {
		t.Fatalf("Adam round trip: %v steps=%d lr=%g", err, opt2.Steps(), opt2.LR)
	}
}

func maxAbs(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// countingCPU records Alloc and Free calls, to check that every buffer a probe,
// tape, gradient set and optimizer allocate is freed exactly once.
type countingCPU struct {
	*CPU
	live map[*float32]int
}

func (c *countingCPU) Alloc(n int) Buf {
	b := c.CPU.Alloc(n + 1) // +1: distinct first-element addresses even for n = 0
	c.live[&host(b)[0]]++
	return HostBuf(host(b)[: n : n+1])
}

func (c *countingCPU) Free(b Buf) {
	h := host(b)
	k := &h[:1][0]
	if c.live[k] != 1 {
		panic(fmt.Sprintf("Free of a buffer allocated %d times", c.live[k]))
	}
	delete(c.live, k)
}

func TestFreeReleasesEverything(t *testing.T) {
	for _, cfg := range []Config{
		{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}, Dropout: 0.1},
		{Arch: "mlp", In: 5, Classes: 3, Hidden: []int{4}},
		{Arch: "linear", In: 5, Classes: 3},
	} {
		c := &countingCPU{CPU: NewCPU(), live: map[*float32]int{}}
		p, err := NewProbe(c, cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		tape, tape2, g, opt := p.NewTape(8, true), p.NewTape(4, false), p.NewGrads(), NewAdam(p, 1e-3)
		tape.Free()
		tape2.Free()
		g.Free()
		opt.Free()
		p.Free()
		if len(c.live) != 0 {
			t.Fatalf("%s: %d buffers not freed", cfg.Arch, len(c.live))
		}
	}
}

// TestTapeWithoutRows: a tape for no rows (a data-parallel replica whose share of a small
// batch is empty) can be made and freed for every architecture and layout.
func TestTapeWithoutRows(t *testing.T) {
	for _, cfg := range []Config{
		{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}},
		{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}, Dropout: 0.1},
		{Arch: "mlp", In: 5, Classes: 3, Hidden: []int{4}},
		{Arch: "linear", In: 5, Classes: 3},
	} {
		p, err := NewProbe(NewCPU(), cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, keep := range []bool{false, true} {
			p.NewTape(0, keep).Free()
		}
	}
}
