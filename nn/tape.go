package nn

import "fmt"

// Tape holds the activations of one forward pass, for up to maxRows rows, and the
// workspace of its backward passes. It is reused across forwards: each Forward
// overwrites it. A tape belongs to one probe and one goroutine.
type Tape struct {
	p           *Probe
	maxRows     int
	keepWeights bool
	wsnap       Buf   // the parameters Backward reads, as at Forward (keepWeights only)
	snapAt      []int // parameter i's offset in wsnap, −1 for one Backward does not read

	n    int
	mode Mode
	x    Buf
	done bool

	src   []Buf // each block's input: x, a block output, cat or a column block of hcat
	srcLD []int // the row stride of src
	cat   []Buf // concatenated unique sources (multi-source blocks, without hcat)
	// hcat, when not nil, holds the hidden blocks' outputs side by side (o[i] are its
	// column blocks, ld[i] apart), so a block whose input is several of them reads a
	// column block of hcat instead of a concatenated copy: the fcnn without dropout,
	// whose multi-source blocks read blocks 0, 1, …, i−1 in that order.
	hcat  Buf
	ld    []int // the row stride of o[i] and h[i]: hcat's width, or the block's own
	weff  []Buf // effective weights of blocks with repeated sources, as at Forward
	a     []Buf // Linear output (after the fused pre-BN LeakyReLU, if any)
	o     []Buf // BN output (after post-BN LeakyReLU, if any)
	h     []Buf // block output: o, or o·mask under dropout
	mask  []Buf
	mean  []Buf // batch moments (Train) or running statistics at Forward time (Eval)
	vr    []Buf
	stats []Buf // 2·out+1 reduction slots

	dh    []Buf // gradient w.r.t. each block's output
	dcat  Buf
	dweff Buf
}

// NewTape allocates a tape for forwards of up to maxRows rows. With keepWeights,
// Forward snapshots the parameters so that Backward differentiates at the weights as
// they were at Forward time even if an optimizer changed them since (the MCT teacher
// step back-propagates through its step-1 activations after its own student update).
// Without keepWeights the weights must not change between Forward and Backward.
//
// The snapshot holds only what Backward reads: the BatchNorm scales γ and the weights
// that carry a gradient to an earlier block without being folded (a folded block's
// effective weight is kept on the tape anyway). For the reference FCNN that is the two
// γ, 8 KB, copied at every kept Forward instead of all parameters (25 MB at the device
// check's shape: 1024 inputs, 1000 classes).
func (p *Probe) NewTape(maxRows int, keepWeights bool) *Tape {
	b := p.b
	t := &Tape{p: p, maxRows: maxRows, keepWeights: keepWeights}
	if keepWeights {
		t.snapAt = make([]int, len(p.params))
		for i := range t.snapAt {
			t.snapAt[i] = -1
		}
		n := 0
		for _, i := range p.backwardReads() {
			t.snapAt[i] = n
			n += p.params[i].size
		}
		t.wsnap = b.Alloc(n)
	}
	nb := len(p.blocks)
	t.src, t.cat, t.a, t.o, t.h = make([]Buf, nb), make([]Buf, nb), make([]Buf, nb), make([]Buf, nb), make([]Buf, nb)
	t.srcLD, t.ld, t.weff = make([]int, nb), make([]int, nb), make([]Buf, nb)
	t.mask, t.mean, t.vr, t.stats, t.dh = make([]Buf, nb), make([]Buf, nb), make([]Buf, nb), make([]Buf, nb), make([]Buf, nb)
	hcatW, hcatOff := 0, make([]int, nb)
	if p.cfg.Arch == "fcnn" && p.cfg.Dropout == 0 {
		for i, bl := range p.blocks {
			if bl.bn {
				hcatOff[i], hcatW = hcatW, hcatW+bl.out
			}
			for k, s := range bl.uniq {
				if len(bl.uniq) > 1 && s != k {
					panic(fmt.Sprintf("nn: fcnn block %d reads %v, not blocks 0, 1, … in order", i, bl.uniq))
				}
			}
		}
		t.hcat = b.Alloc(max(maxRows, 1) * hcatW) // a row even for a replica with none, so the views fit
	}
	maxCat, maxWeff := 0, 0
	for i, bl := range p.blocks {
		if len(bl.uniq) > 1 {
			maxCat = max(maxCat, bl.uniqW)
			if t.hcat == nil {
				t.cat[i] = b.Alloc(maxRows * bl.uniqW)
			}
		}
		if bl.dup {
			t.weff[i] = b.Alloc(bl.out * bl.uniqW)
			maxWeff = max(maxWeff, bl.out*bl.uniqW)
		}
		t.a[i] = b.Alloc(maxRows * bl.out)
		t.dh[i] = b.Alloc(maxRows * bl.out)
		t.o[i], t.h[i], t.ld[i] = t.a[i], t.a[i], bl.out
		if bl.bn {
			if t.hcat != nil {
				t.o[i], t.ld[i] = b.View(t.hcat, hcatOff[i], (max(maxRows, 1)-1)*hcatW+bl.out), hcatW
			} else {
				t.o[i] = b.Alloc(maxRows * bl.out)
			}
			t.h[i] = t.o[i]
			t.mean[i], t.vr[i] = b.Alloc(bl.out), b.Alloc(bl.out)
			t.stats[i] = b.Alloc(2*bl.out + 1)
		}
		if bl.dropout {
			t.mask[i] = b.Alloc(maxRows * bl.out)
			t.h[i] = b.Alloc(maxRows * bl.out)
		}
	}
	if maxCat > 0 {
		t.dcat = b.Alloc(maxRows * maxCat)
	}
	if maxWeff > 0 {
		t.dweff = b.Alloc(maxWeff)
	}
	return t
}

// Free releases the tape's buffers; the tape must not be used afterwards.
func (t *Tape) Free() {
	b := t.p.b
	free := func(xs ...Buf) {
		for _, x := range xs {
			if x != nil {
				b.Free(x)
			}
		}
	}
	free(t.wsnap, t.dcat, t.dweff, t.hcat) // o[i] in hcat are views: freeing them does nothing
	for i, bl := range t.p.blocks {
		free(t.cat[i], t.weff[i], t.a[i], t.dh[i])
		if bl.bn {
			free(t.o[i], t.mean[i], t.vr[i], t.stats[i])
		}
		if bl.dropout {
			free(t.mask[i], t.h[i])
		}
	}
}

// backwardReads lists the parameters Backward reads, in Params order: BN scales, and
// the weights of unfolded blocks whose input gets a gradient.
func (p *Probe) backwardReads() []int {
	var reads []int
	for _, bl := range p.blocks {
		if bl.gradsInput() && !bl.dup {
			reads = append(reads, bl.w)
		}
		if bl.bn {
			reads = append(reads, bl.gamma)
		}
	}
	return reads
}

// gradsInput reports whether a gradient flows through the block to its input: not
// when that input is the probe's x alone.
func (bl *block) gradsInput() bool { return len(bl.uniq) > 1 || bl.uniq[0] >= 0 }

// weight returns parameter i as Backward must see it.
func (t *Tape) weight(i int) Buf {
	q := t.p.params[i]
	if !t.keepWeights {
		return q.W
	}
	if t.snapAt[i] < 0 {
		panic(fmt.Sprintf("nn: Backward reads %s, which its tape does not keep", q.Name))
	}
	return t.p.b.View(t.wsnap, t.snapAt[i], q.size)
}

// reduce passes a 2·cols+1 statistics buffer through p.Reduce.
func (p *Probe) reduce(stats Buf, cols int) {
	n := 2*cols + 1
	if cap(p.scratch) < n {
		p.scratch = make([]float32, n)
	}
	h := p.scratch[:n]
	p.b.Download(h, stats)
	p.Reduce(h)
	p.b.Upload(stats, h)
}

// Forward runs the probe on x (n×In, row-major) and returns the n×Classes logits
// (already divided by the temperature), owned by the tape. x must stay unchanged
// until the tape's last Backward. Train mode uses batch statistics, updates the BN
// running statistics (PyTorch semantics) and applies dropout.
func (p *Probe) Forward(t *Tape, x Buf, n int, mode Mode) Buf {
	if t.p != p {
		panic("nn: Forward with another probe's tape")
	}
	if n < 1 || n > t.maxRows {
		panic(fmt.Sprintf("nn: Forward of %d rows on a tape for %d", n, t.maxRows))
	}
	if mode == Train && n < 2 && p.Reduce == nil {
		panic("nn: Train-mode BatchNorm needs at least 2 rows, as in PyTorch")
	}
	if x.Len() < n*p.cfg.In {
		panic(fmt.Sprintf("nn: input has %d elements, %d rows × %d features need %d", x.Len(), n, p.cfg.In, n*p.cfg.In))
	}
	b, c := p.b, p.cfg
	t.n, t.mode, t.x, t.done = n, mode, x, true
	if t.keepWeights {
		for i, off := range t.snapAt {
			if q := p.params[i]; off >= 0 {
				b.Copy(b.View(t.wsnap, off, q.size), q.W, q.size)
			}
		}
	}
	if mode == Train {
		p.forwards++
	}
	for i, bl := range p.blocks {
		src, ld := t.sourceOf(bl.uniq[0])
		switch {
		case len(bl.uniq) > 1 && t.hcat != nil: // blocks 0, 1, …: the first columns of hcat
			src, ld = t.hcat, t.ld[0]
		case len(bl.uniq) > 1:
			off := 0
			for _, s := range bl.uniq {
				w := p.widthOf(s)
				from, fromLD := t.sourceOf(s)
				b.CopyCols(t.cat[i], bl.uniqW, off, from, fromLD, 0, n, w, 0)
				off += w
			}
			src, ld = t.cat[i], bl.uniqW
		}
		t.src[i], t.srcLD[i] = src, ld
		w := p.params[bl.w].W
		if bl.dup {
			b.FoldCols(t.weff[i], bl.uniqW, w, bl.inW, bl.out, bl.foldOff)
			w = t.weff[i]
		}
		slope := float32(1)
		if bl.preAct {
			slope = c.Slope
		}
		b.GemmStrided(false, true, n, bl.out, bl.uniqW, 1, src, ld, w, bl.uniqW, 0, t.a[i], bl.out)
		if bl.b >= 0 || slope != 1 {
			var bias Buf
			if bl.b >= 0 {
				bias = p.params[bl.b].W
			}
			b.AddBiasLeakyReLU(t.a[i], bias, n, bl.out, slope)
		}
		if bl.final {
			if c.Temperature != 1 {
				b.Scale(t.a[i], n*bl.out, 1/c.Temperature)
			}
			continue
		}
		gamma, beta := p.params[bl.gamma].W, p.params[bl.beta].W
		runM, runV := p.buffers[bl.runM].W, p.buffers[bl.runV].W
		if mode == Train {
			b.BNStats(t.stats[i], t.a[i], runM, n, bl.out)
			if p.Reduce != nil {
				p.reduce(t.stats[i], bl.out)
			}
			b.BNMoments(t.mean[i], t.vr[i], runM, runV, t.stats[i], bl.out, c.BNMomentum)
		} else {
			b.Copy(t.mean[i], runM, bl.out)
			b.Copy(t.vr[i], runV, bl.out)
		}
		b.BNNormalize(t.o[i], t.ld[i], t.a[i], t.mean[i], t.vr[i], gamma, beta, n, bl.out, c.BNEps)
		if bl.postAct {
			b.AddBiasLeakyReLU(t.o[i], nil, n, bl.out, c.Slope)
		}
		if bl.dropout && mode == Train {
			key := RNGKey{Seed: p.seed, Step: uint32(p.forwards), Stream: StreamDropout + uint32(i)}
			if p.DropoutStepAt != nil {
				key.Step = 0 // read from DropoutStepAt: the call stays the same from forward to forward
			}
			b.DropoutMask(t.mask[i], n, bl.out, c.Dropout, key, p.DropoutRowBase, p.DropoutStepAt)
			b.Copy(t.h[i], t.o[i], n*bl.out)
			b.Mul(t.h[i], t.mask[i], n*bl.out)
		}
	}
	return t.a[len(p.blocks)-1]
}

// sourceOf is the activation block s feeds forward: x, or block s's output (its
// dropped-out copy in Train mode, the BN output itself in Eval mode), and its row stride.
func (t *Tape) sourceOf(s int) (Buf, int) {
	switch {
	case s < 0:
		return t.x, t.p.cfg.In
	case t.p.blocks[s].dropout && t.mode != Train:
		return t.o[s], t.ld[s]
	}
	return t.h[s], t.ld[s]
}

func (p *Probe) widthOf(s int) int {
	if s < 0 {
		return p.cfg.In
	}
	return p.blocks[s].out
}

// Backward adds to g the gradient of Σ dlogits·logits with respect to the
// parameters, through the tape's last Forward (dlogits is n×Classes, the gradient of
// the loss w.r.t. the returned logits). It may be called several times per Forward,
// each adding to g; in Train mode the BN backward sums go through Reduce. After
// g.Zero() it writes g instead, without reading it.
func (p *Probe) Backward(t *Tape, dlogits Buf, g *Grads) {
	if t.p != p || g.p != p {
		panic("nn: Backward with another probe's tape or gradients")
	}
	if !t.done {
		panic("nn: Backward before Forward")
	}
	b, c, n := p.b, p.cfg, t.n
	// gb is the beta of every write to g: each parameter's gradient is written once
	// below, so after Zero the first and only write overwrites.
	gb := float32(1)
	if g.cleared {
		gb, g.cleared = 0, false
	}
	started := make([]bool, len(p.blocks))
	for i := len(p.blocks) - 1; i >= 0; i-- {
		bl := p.blocks[i]
		d := t.dh[i]
		if bl.final {
			// d = dlogits/T·LeakyReLU'; dlogits itself, unchanged, when T = 1 and
			// the block ends in no activation (dlogits is only read below).
			src := dlogits
			if c.Temperature != 1 {
				b.Copy(d, dlogits, n*bl.out)
				b.Scale(d, n*bl.out, 1/c.Temperature)
				src = d
			}
			if bl.preAct {
				b.LeakyReLUBackward(d, src, t.a[i], n*bl.out, c.Slope)
				src = d
			}
			d = src
		} else {
			if !started[i] {
				panic(fmt.Sprintf("nn: block %d has no consumer", i))
			}
			if bl.dropout && t.mode == Train {
				b.Mul(d, t.mask[i], n*bl.out)
			}
			if bl.postAct {
				b.LeakyReLUBackward(d, d, t.o[i], n*bl.out, c.Slope)
			}
			st := t.stats[i]
			b.BNBackwardStats(st, g.views[bl.gamma], g.views[bl.beta], d, t.a[i], t.mean[i], t.vr[i], n, bl.out, c.BNEps, gb)
			if t.mode == Train {
				if p.Reduce != nil {
					p.reduce(st, bl.out)
				}
			} else {
				// Eval: the moments are constants, so dx = γ/√(var+ε)·dy only.
				b.Fill(st, 2*bl.out, 0)
			}
			// The fcnn's LeakyReLU before BN (output t.a[i], BN's input) is
			// differentiated in the same kernel.
			slope := float32(1)
			if bl.preAct {
				slope = c.Slope
			}
			b.BNBackward(d, d, t.a[i], t.mean[i], t.vr[i], t.weight(bl.gamma), st, n, bl.out, c.BNEps, slope)
		}
		switch gw := g.views[bl.w]; {
		case bl.dup && gb == 0:
			// dW of each repeat is the gradient of the effective weight's block: that
			// gradient written in place (row stride inW), then its repeated block's
			// columns copied to the repeat's.
			b.GemmStrided(true, false, bl.out, bl.uniqW, n, 1, d, bl.out, t.src[i], t.srcLD[i], 0, gw, bl.inW)
			b.CopyCols(gw, bl.inW, bl.uniqW, gw, bl.inW, bl.foldOff, bl.out, bl.inW-bl.uniqW, 0)
		case bl.dup: // adding to g: through the effective weight's gradient
			b.GemmStrided(true, false, bl.out, bl.uniqW, n, 1, d, bl.out, t.src[i], t.srcLD[i], 0, t.dweff, bl.uniqW)
			b.UnfoldCols(gw, bl.inW, t.dweff, bl.uniqW, bl.out, bl.foldOff, gb)
		default:
			b.GemmStrided(true, false, bl.out, bl.inW, n, 1, d, bl.out, t.src[i], t.srcLD[i], gb, gw, bl.inW)
		}
		if bl.b >= 0 {
			b.ColSums(g.views[bl.b], d, n, bl.out, gb)
		}
		if !bl.gradsInput() {
			continue
		}
		w := t.weff[i] // the effective weight as at Forward
		if !bl.dup {
			w = t.weight(bl.w)
		}
		if len(bl.uniq) == 1 {
			s := bl.uniq[0]
			beta := float32(0)
			if started[s] {
				beta = 1
			}
			b.Gemm(false, false, n, bl.uniqW, bl.out, 1, d, w, beta, t.dh[s])
			started[s] = true
			continue
		}
		b.Gemm(false, false, n, bl.uniqW, bl.out, 1, d, w, 0, t.dcat)
		off := 0
		for _, s := range bl.uniq {
			sw := p.widthOf(s)
			if s >= 0 {
				beta := float32(0)
				if started[s] {
					beta = 1
				}
				b.CopyCols(t.dh[s], sw, 0, t.dcat, bl.uniqW, off, n, sw, beta)
				started[s] = true
			}
			off += sw
		}
	}
}

// Grads holds a gradient for every parameter of a probe, in one flat buffer with
// the layout of the parameters.
type Grads struct {
	p     *Probe
	flat  Buf
	views []Buf
	// cleared: the gradient is zero but its buffer was not written. Zero leaves the
	// clearing to the next Backward, which then writes every gradient instead of adding
	// to it (on a GPU, a pass over the buffer saved and the reads of the adding), or to
	// the next other use of the buffer (buf).
	cleared bool
}

// NewGrads allocates zeroed gradients for p.
func (p *Probe) NewGrads() *Grads {
	g := &Grads{p: p, flat: p.b.Alloc(p.nParams)}
	for _, q := range p.params {
		g.views = append(g.views, p.b.View(g.flat, q.off, q.size))
	}
	return g
}

// Free releases the gradient buffer.
func (g *Grads) Free() { g.p.b.Free(g.flat) }

// Zero clears the gradients: the next Backward writes them, or the next Flat, Bufs,
// Download or optimizer step zeroes the buffer first. A buffer taken from Flat or Bufs
// before the Zero is not cleared by it: take it again after.
func (g *Grads) Zero() { g.cleared = true }

// buf is the flat buffer, cleared now if a Zero is pending.
func (g *Grads) buf() Buf {
	if g.cleared {
		g.p.b.Fill(g.flat, g.p.nParams, 0)
		g.cleared = false
	}
	return g.flat
}

// Bufs returns one buffer per parameter, in Params order (views of Flat).
func (g *Grads) Bufs() []Buf {
	g.buf()
	return g.views
}

// Flat returns the buffer of all gradients, in Params order.
func (g *Grads) Flat() Buf { return g.buf() }

// Len is the number of gradient scalars (the probe's NumParams).
func (g *Grads) Len() int { return g.p.nParams }

// Download copies all gradients, in Params order, into host (len ≥ NumParams);
// with Upload it brackets a host all-reduce.
func (g *Grads) Download(host []float32) { g.p.b.Download(host[:g.p.nParams], g.buf()) }

// Upload replaces all gradients by host[0:NumParams].
func (g *Grads) Upload(host []float32) {
	g.p.b.Upload(g.flat, host[:g.p.nParams])
	g.cleared = false
}
