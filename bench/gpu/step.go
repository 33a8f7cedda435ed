package main

import (
	"fmt"
	"math/rand"

	"mct/nn"
)

// mctUpdate is one MCT update for V views in one process, over any
// nn.Backend: DESIGN.md "The MCT step" with the all-gathers reduced to
// sharing buffers. Per view it runs 1 forward on U, 2 on X, 2 backwards on U
// and 1 on X, and two Adam steps: the cost the benchmark measures.
type mctUpdate struct {
	b        nn.Backend
	batch, c int
	invT     float32
	seed     uint64
	rowIndex []uint32
	views    []*viewState
	m        nn.Buf // mean of the other views' logits (V > 2 only)
	lossRow  nn.Buf // per-row losses
	lossHost []float32
	h        []float64
	step     uint32
}

type viewState struct {
	p            *nn.Probe
	opt          *nn.Adam
	tapeU, tapeX *nn.Tape
	gStudent     *nn.Grads
	gTeacher     *nn.Grads // supervised gradient at θ', then the teacher's too
	u, x, y      nn.Buf
	zU           nn.Buf
	yhat         nn.Buf // this view's pseudo-labels (sampled from the others)
	d            nn.Buf // B×C logit gradient scratch
}

func newUpdate(b nn.Backend, cfg nn.Config, views, batch int, seed uint64) (*mctUpdate, error) {
	u := &mctUpdate{b: b, batch: batch, c: cfg.Classes, invT: 1, seed: seed,
		lossRow: b.Alloc(batch), lossHost: make([]float32, batch), h: make([]float64, views)}
	if cfg.Temperature != 0 {
		u.invT = 1 / cfg.Temperature
	}
	r := rand.New(rand.NewSource(int64(seed)))
	u.rowIndex = make([]uint32, batch)
	for i := range u.rowIndex {
		u.rowIndex[i] = uint32(r.Int31())
	}
	randBuf := func(n int) nn.Buf {
		h := make([]float32, n)
		for i := range h {
			h[i] = float32(r.NormFloat64())
		}
		x := b.Alloc(n)
		b.Upload(x, h)
		return x
	}
	y := make([]float32, batch)
	for i := range y {
		y[i] = float32(r.Intn(cfg.Classes))
	}
	for v := 0; v < views; v++ {
		p, err := nn.NewProbe(b, cfg, seed+uint64(v))
		if err != nil {
			return nil, err
		}
		s := &viewState{p: p, opt: nn.NewAdam(p, 1e-4), tapeU: p.NewTape(batch, true), tapeX: p.NewTape(batch, false),
			gStudent: p.NewGrads(), gTeacher: p.NewGrads(), u: randBuf(batch * cfg.In), x: randBuf(batch * cfg.In),
			y: b.Alloc(batch), yhat: b.Alloc(batch), d: b.Alloc(batch * cfg.Classes)}
		b.Upload(s.y, y)
		u.views = append(u.views, s)
	}
	if views > 2 {
		u.m = b.Alloc(batch * cfg.Classes)
	}
	return u, nil
}

// ce returns the mean cross-entropy of logits against labels and, when d is
// not nil, writes scale·(softmax − onehot)/B into it.
func (u *mctUpdate) ce(logits, labels, d nn.Buf, scale float32) float64 {
	u.b.SoftmaxCE(u.lossRow, d, logits, labels, u.batch, u.c, 1, scale/float32(u.batch), 0)
	u.b.Download(u.lossHost, u.lossRow)
	var s float64
	for _, v := range u.lossHost {
		s += float64(v)
	}
	return s / float64(u.batch)
}

// others returns the mean of the logits of every view but v: for two views,
// the other view's logits themselves.
func (u *mctUpdate) others(v int) nn.Buf {
	if len(u.views) == 2 {
		return u.views[1-v].zU
	}
	n := u.batch * u.c
	u.b.Fill(u.m, n, 0)
	for w, s := range u.views {
		if w != v {
			u.b.Axpy(u.m, 1/float32(len(u.views)-1), s.zU, n)
		}
	}
	return u.m
}

// run performs one update and returns the views' h.
func (u *mctUpdate) run() []float64 {
	b, n := u.b, u.batch
	V := len(u.views)
	// 1. Teacher pass.
	for _, s := range u.views {
		s.zU = s.p.Forward(s.tapeU, s.u, n, nn.Train)
	}
	// 2. Pseudo-labels.
	for v, s := range u.views {
		key := nn.RNGKey{Seed: u.seed, Step: u.step, Stream: uint32(v)}
		b.SampleGumbel(s.yhat, u.others(v), n, u.c, u.invT, key, u.rowIndex)
	}
	// 3–4. Student step and feedback.
	for v, s := range u.views {
		before := u.ce(s.p.Forward(s.tapeX, s.x, n, nn.Train), s.y, nil, 1)
		b.SoftmaxCE(nil, s.d, s.zU, s.yhat, n, u.c, 1, 1/float32(n), 0)
		s.gStudent.Zero()
		s.p.Backward(s.tapeU, s.d, s.gStudent)
		nn.ClipGradNorm(b, s.gStudent, 1)
		s.opt.Step(s.gStudent)
		after := u.ce(s.p.Forward(s.tapeX, s.x, n, nn.Train), s.y, s.d, 1)
		s.gTeacher.Zero()
		s.p.Backward(s.tapeX, s.d, s.gTeacher)
		u.h[v] = before - after
	}
	// 5. Teacher step of each view w: the other views' feedback on the
	// pseudo-labels w helped produce, back-propagated through w's step-1
	// activations at its pre-update weights (the tape kept them).
	for w, s := range u.views {
		first := true
		for v, o := range u.views {
			if v == w {
				continue
			}
			beta := float32(1)
			if first {
				beta = 0
			}
			first = false
			scale := float32(u.h[v]) / float32(V-1) / float32(n)
			b.SoftmaxCE(nil, s.d, u.others(v), o.yhat, n, u.c, u.invT, scale, beta)
		}
		s.p.Backward(s.tapeU, s.d, s.gTeacher)
		nn.ClipGradNorm(b, s.gTeacher, 1)
		s.opt.Step(s.gTeacher)
	}
	u.step++
	return u.h
}

// flopsPerUpdate is DESIGN.md's estimate, 18·params·B per view: a forward is
// 2·params·B, a backward twice that, and a view runs 3 forwards and 3
// backwards.
func (u *mctUpdate) flopsPerUpdate() float64 {
	return 18 * float64(u.views[0].p.NumParams()) * float64(u.batch) * float64(len(u.views))
}

func (u *mctUpdate) String() string {
	return fmt.Sprintf("%d views, B=%d, %d params per view", len(u.views), u.batch, u.views[0].p.NumParams())
}
