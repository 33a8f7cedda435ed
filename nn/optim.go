package nn

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// Adam is torch.optim.Adam (PyTorch 1.13, amsgrad off, single-tensor path) over a
// probe's flat parameter buffer. Change LR between steps to schedule it.
type Adam struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32

	p    *Probe
	m, v Buf
	coef Buf // StepClipped's clipping factor, on the device
	t    int64
}

// NewAdam returns Adam with PyTorch's defaults (betas 0.9, 0.999, eps 1e-8, no
// weight decay) and zero moments.
func NewAdam(p *Probe, lr float32) *Adam {
	return &Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, p: p,
		m: p.b.Alloc(p.nParams), v: p.b.Alloc(p.nParams), coef: p.b.Alloc(1)}
}

// Free releases the moment buffers.
func (a *Adam) Free() {
	a.p.b.Free(a.m)
	a.p.b.Free(a.v)
	a.p.b.Free(a.coef)
}

// Steps is the number of steps taken (PyTorch's state "step").
func (a *Adam) Steps() int64 { return a.t }

// asDouble returns the float64 a user meant when writing the float32 x (0.9, not
// 0.899999976): PyTorch computes its bias corrections from Python doubles.
func asDouble(x float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return v
}

// Step applies one update with gradient g.
func (a *Adam) Step(g *Grads) { a.step(g, 0, nil) }

// StepAt is Step with the step's scalars read from the device buffer sched, which
// the caller filled with Scalars(1) before (a step recorded once and replayed then
// launches the same kernel every time; see Backend).
func (a *Adam) StepAt(g *Grads, sched Buf) { a.step(g, 0, sched) }

// StepClipped is ClipGradNorm(g, maxNorm) then StepAt(g, sched), to the bit, in two
// passes over the gradient instead of four and without changing g: the clipping factor
// stays on the device (Backend.ClipCoef) and the Adam kernel applies it as it reads
// the gradient. maxNorm ≤ 0 does not clip; a nil sched passes the scalars as Step does.
func (a *Adam) StepClipped(g *Grads, maxNorm float32, sched Buf) { a.step(g, maxNorm, sched) }

func (a *Adam) step(g *Grads, maxNorm float32, sched Buf) {
	if g.p != a.p {
		panic("nn: Adam step with another probe's gradients")
	}
	stepSize, bc2Sqrt := a.Scalars(1)
	if sched != nil {
		stepSize, bc2Sqrt = 0, 0 // read from sched: the call stays the same from step to step
	}
	a.t++
	b1, b2 := asDouble(a.Beta1), asDouble(a.Beta2)
	h := AdamHyper{
		StepSize:    stepSize,
		Beta1:       a.Beta1,
		Beta2:       a.Beta2,
		Eps:         a.Eps,
		WeightDecay: a.WeightDecay,
		BC2Sqrt:     bc2Sqrt,

		OneMinusBeta1: float32(1 - b1),
		OneMinusBeta2: float32(1 - b2),
	}
	var gscale Buf
	if maxNorm > 0 {
		a.p.b.ClipCoef(a.coef, g.buf(), a.p.nParams, maxNorm, nil)
		gscale = a.coef
	}
	a.p.b.Adam(a.p.flat, g.buf(), a.m, a.v, a.p.nParams, h, sched, gscale)
}

// Scalars returns the values that change from step to step, for the step that
// comes ahead steps from now (1: the next) at the current LR: the step size
// lr/(1−β1^t) and sqrt(1−β2^t), computed in float64 and rounded once. They are
// StepAt's sched[0] and sched[1].
func (a *Adam) Scalars(ahead int) (stepSize, bc2Sqrt float32) {
	t := float64(a.t + int64(ahead))
	bc1 := 1 - math.Pow(asDouble(a.Beta1), t)
	bc2 := 1 - math.Pow(asDouble(a.Beta2), t)
	return float32(asDouble(a.LR) / bc1), float32(math.Sqrt(bc2))
}

const adamMagic = "MCTADAM1"

// SaveState encodes the hyperparameters, the step count and both moments.
func (a *Adam) SaveState() ([]byte, error) {
	out := append([]byte(nil), adamMagic...)
	out = binary.LittleEndian.AppendUint64(out, uint64(a.p.nParams))
	out = binary.LittleEndian.AppendUint64(out, uint64(a.t))
	for _, v := range []float32{a.LR, a.Beta1, a.Beta2, a.Eps, a.WeightDecay} {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	out = appendFloats(out, a.p.b, a.m, a.p.nParams)
	out = appendFloats(out, a.p.b, a.v, a.p.nParams)
	return out, nil
}

// LoadState restores what SaveState wrote, for a probe of the same size.
func (a *Adam) LoadState(data []byte) error {
	r := reader{data: data, what: "Adam state"}
	if string(r.bytes(len(adamMagic))) != adamMagic {
		return fmt.Errorf("Adam state: bad magic, not an Adam state")
	}
	if n := r.u64(); r.err == nil && n != uint64(a.p.nParams) {
		return fmt.Errorf("Adam state: saved for %d parameters, this probe has %d", n, a.p.nParams)
	}
	t := int64(r.u64())
	hyper := r.floats(5)
	m := r.floats(a.p.nParams)
	v := r.floats(a.p.nParams)
	if r.err != nil {
		return r.err
	}
	if len(r.data) != 0 {
		return fmt.Errorf("Adam state: %d trailing bytes", len(r.data))
	}
	a.t = t
	a.LR, a.Beta1, a.Beta2, a.Eps, a.WeightDecay = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
	a.p.b.Upload(a.m, m)
	a.p.b.Upload(a.v, v)
	return nil
}

// ClipGradNorm scales g so its global L2 norm is at most maxNorm and returns the
// norm before clipping, as torch.nn.utils.clip_grad_norm_ (coefficient
// maxNorm/(norm+1e-6), applied only when below 1). Reading the norm back waits for
// the device; Grads.Clip does the same clipping without that wait.
func ClipGradNorm(b Backend, g *Grads, maxNorm float32) float32 {
	norm := b.Alloc(1)
	defer b.Free(norm)
	b.ClipNorm(g.buf(), g.p.nParams, maxNorm, norm)
	h := []float32{0}
	b.Download(h, norm)
	return h[0]
}

// Clip is ClipGradNorm without reading the norm back: the device computes the norm
// and applies the coefficient itself, so the host does not wait.
func (g *Grads) Clip(maxNorm float32) { g.p.b.ClipNorm(g.buf(), g.p.nParams, maxNorm, nil) }

// CrossEntropy returns the mean softmax cross-entropy of the n×classes logits against
// the float32 class labels; if dlogits is not nil it receives scale·(softmax −
// onehot)/n, the gradient of scale·loss. It allocates its per-row scratch buffer for
// the call; loops should keep a Loss instead.
func CrossEntropy(b Backend, logits Buf, n, classes int, labels Buf, dlogits Buf, scale float32) float32 {
	l := NewLoss(b, n)
	defer l.Free()
	return l.CrossEntropy(logits, n, classes, labels, dlogits, scale)
}

// Loss is CrossEntropy with reusable scratch memory (a device allocation per call
// would cost more than the kernel). One Loss serves one goroutine.
type Loss struct {
	b       Backend
	rows    Buf // per-row losses
	mean    Buf // CrossEntropy's result before it is read back
	maxRows int
}

// NewLoss allocates scratch for batches of up to maxRows rows.
func NewLoss(b Backend, maxRows int) *Loss {
	return &Loss{b: b, rows: b.Alloc(maxRows), mean: b.Alloc(1), maxRows: maxRows}
}

// CrossEntropy is the package-level CrossEntropy on l's scratch. Returning the loss
// waits for the device; CrossEntropyTo leaves it there.
func (l *Loss) CrossEntropy(logits Buf, n, classes int, labels Buf, dlogits Buf, scale float32) float32 {
	l.CrossEntropyTo(l.mean, logits, n, classes, labels, dlogits, scale)
	h := []float32{0}
	l.b.Download(h, l.mean)
	return h[0]
}

// CrossEntropyTo is CrossEntropy with the mean loss written to dst[0] on the device
// (summed in float64, Backend.Mean) instead of returned, so a step can read all its
// scalars back at once.
func (l *Loss) CrossEntropyTo(dst Buf, logits Buf, n, classes int, labels Buf, dlogits Buf, scale float32) {
	if n > l.maxRows {
		panic(fmt.Sprintf("nn: loss of %d rows with scratch for %d", n, l.maxRows))
	}
	l.b.SoftmaxCE(l.rows, dlogits, logits, labels, n, classes, 1, scale/float32(n), 0, nil)
	l.b.Mean(dst, l.rows, n)
}

// Free releases the scratch buffers.
func (l *Loss) Free() {
	l.b.Free(l.rows)
	l.b.Free(l.mean)
}
