package nn

import "testing"

// gemmCounter is the CPU backend adding up 2·m·n·k over the products it computes.
type gemmCounter struct {
	*CPU
	flops float64
}

func (g *gemmCounter) Gemm(tA, tB bool, m, n, k int, alpha float32, a, b Buf, beta float32, c Buf) {
	g.flops += 2 * float64(m) * float64(n) * float64(k)
	g.CPU.Gemm(tA, tB, m, n, k, alpha, a, b, beta, c)
}

func (g *gemmCounter) GemmStrided(tA, tB bool, m, n, k int, alpha float32, a Buf, lda int, b Buf, ldb int, beta float32, c Buf, ldc int) {
	g.flops += 2 * float64(m) * float64(n) * float64(k)
	g.CPU.GemmStrided(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// TestGemmFLOPs: GemmFLOPs is what a Forward and a Backward compute, counted product by
// product, for every architecture; and for the reference fcnn it is the closed form of
// its folded products (fc1 multiplies [h0,h0] as h0, fc2 [h0,h1,h1] as [h0,h1]).
func TestGemmFLOPs(t *testing.T) {
	for _, cfg := range []Config{
		{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{4, 4, 4}},
		{Arch: "fcnn", In: 5, Classes: 3, Hidden: []int{3, 3, 3, 3}, Dropout: 0.3},
		{Arch: "mlp", In: 6, Classes: 4, Hidden: []int{5, 3}},
		{Arch: "linear", In: 7, Classes: 3},
	} {
		const rows = 6
		b := &gemmCounter{CPU: NewCPU()}
		p, err := NewProbe(b, cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		tape, g := p.NewTape(rows, false), p.NewGrads()
		x, dl := b.Alloc(rows*cfg.In), b.Alloc(rows*cfg.Classes)
		b.flops = 0
		p.Forward(tape, x, rows, Train)
		fwd := b.flops
		b.flops = 0
		p.Backward(tape, dl, g)
		wantF, wantB := p.GemmFLOPs(rows)
		if fwd != wantF || b.flops != wantB {
			t.Errorf("%s %v: products of %g FLOPs forward and %g backward, GemmFLOPs says %g and %g", cfg.Arch, cfg.Hidden, fwd, b.flops, wantF, wantB)
		}
	}

	const in, h, c, rows = 1024, 1024, 1000, 1024
	p, err := NewProbe(NewCPU(), Config{Arch: "fcnn", In: in, Classes: c}, 1)
	if err != nil {
		t.Fatal(err)
	}
	f, bw := p.GemmFLOPs(rows)
	if wf, wb := 2.0*rows*(in*h+h*h+c*2*h), 2.0*rows*(in*h+2*h*h+2*c*2*h); f != wf || bw != wb {
		t.Errorf("reference fcnn at 1024 rows: %g and %g FLOPs, want %g and %g", f, bw, wf, wb)
	}
}
