package nntest

import (
	"math"
	"math/rand/v2"
	"testing"

	"mct/nn"
)

// GemmMode is one GEMM precision of the backend under test.
type GemmMode struct {
	Name string
	// Tol bounds the GEMM's error relative to the output's scale.
	Tol float64
	// Set switches the backend to this precision.
	Set func()
}

// Options adapt the suite to a backend; the zero value suits one that computes like
// the CPU backend.
type Options struct {
	// GemmModes, if set, repeats the GEMM check in each mode with its tolerance; the
	// other checks run in the first mode, and Conformance leaves the backend in it.
	// Unset: the backend as it is, within 1e-5.
	GemmModes []GemmMode
	// Small shrinks the large shapes, for slow backends (an emulator).
	Small bool
}

// Tolerances relative to an output's scale; see the package comment.
const (
	exact = 0
	tight = 1e-6
	loose = 1e-5
)

// Conformance runs every check as a subtest of t.
func Conformance(t *testing.T, b nn.Backend, o Options) {
	if len(o.GemmModes) == 0 {
		o.GemmModes = []GemmMode{{Name: "default", Tol: loose, Set: func() {}}}
	}
	o.GemmModes[0].Set()
	s := &suite{b: b, ref: nn.NewCPU(), o: o}
	for _, c := range []struct {
		name string
		f    func(t *testing.T)
	}{
		{"Memory", s.memory}, {"GatherRows", s.gatherRows}, {"Gemm", s.gemm}, {"Elementwise", s.elementwise},
		{"Columns", s.columns}, {"Scalars", s.scalars}, {"BatchNorm", s.batchNorm}, {"Softmax", s.softmax},
		{"Choices", s.choices}, {"Adam", s.adam}, {"Probe", s.probe},
	} {
		t.Run(c.name, c.f)
	}
}

type suite struct {
	b, ref nn.Backend
	o      Options
}

// pick returns small under Options.Small, else full.
func (s *suite) pick(full, small int) int {
	if s.o.Small {
		return small
	}
	return full
}

// side is one backend's run of a check: the buffers it made (freed after the run) and
// the outputs it recorded, in order.
type side struct {
	nn.Backend
	bufs []nn.Buf
	outs []output
}

type output struct {
	name string
	tol  float64
	v    []float32
}

func (d *side) alloc(n int) nn.Buf {
	x := d.Alloc(n)
	d.bufs = append(d.bufs, x)
	return x
}

func (d *side) put(h []float32) nn.Buf {
	x := d.alloc(len(h))
	d.Upload(x, h)
	return x
}

// keep records x's contents as the output name, to agree with the CPU backend's within
// tol of its scale, or bit for bit when tol is exact.
func (d *side) keep(name string, tol float64, x nn.Buf) { d.keepHost(name, tol, get(d, x)...) }

func (d *side) keepHost(name string, tol float64, v ...float32) {
	d.outs = append(d.outs, output{name, tol, v})
}

// both runs f on the backend under test, then on the CPU backend, and compares the
// outputs f kept on each. The inputs must come from outside f, so both runs see the same.
func (s *suite) both(t *testing.T, f func(d *side)) {
	t.Helper()
	var sides [2]*side
	for i, b := range []nn.Backend{s.b, s.ref} {
		d := &side{Backend: b}
		f(d)
		for _, x := range d.bufs {
			d.Free(x)
		}
		sides[i] = d
	}
	got, want := sides[0].outs, sides[1].outs
	if len(got) != len(want) {
		t.Fatalf("%d outputs from %s, %d from the CPU backend", len(got), s.b.Name(), len(want))
	}
	for i, w := range want {
		same(t, w.name, "CPU backend", got[i].v, w.v, w.tol)
	}
}

// same reports the worst element of got against want (named ref in the message): any
// difference in bits when tol is exact, else an error above tol·max|want| (NaN counts as
// infinite).
func same(t *testing.T, what, ref string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, %s %d", what, len(got), ref, len(want))
		return
	}
	if tol == exact {
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("%s[%d] = %g (%08x), %s %g (%08x): want bit-identical", what, i, got[i],
					math.Float32bits(got[i]), ref, want[i], math.Float32bits(want[i]))
				return
			}
		}
		return
	}
	scale, worst, wi := 0.0, 0.0, -1
	for i := range want {
		scale = math.Max(scale, math.Abs(float64(want[i])))
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		if wi < 0 || d > worst {
			worst, wi = d, i
		}
	}
	if wi >= 0 && worst > tol*scale {
		t.Errorf("%s[%d] = %.9g, %s %.9g (error %.2e > %.0e × scale %.3g)", what, wi, got[wi], ref, want[wi],
			worst, tol, scale)
	}
}

func get(b nn.Backend, x nn.Buf) []float32 {
	h := make([]float32, x.Len())
	b.Download(h, x)
	return h
}

// rng gives each check its own inputs, so that running one check alone (go test -run)
// sees the same numbers as the whole suite.
func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6e6e74657374)) }

func randn(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(scale * r.NormFloat64())
	}
	return x
}

func labels(r *rand.Rand, n, classes int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.IntN(classes))
	}
	return x
}

func indexBits(idx []uint32) []float32 {
	h := make([]float32, len(idx))
	for i, k := range idx {
		h[i] = nn.IndexBits(k)
	}
	return h
}
