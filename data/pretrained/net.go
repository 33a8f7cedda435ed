package pretrained

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// Net is a Model compiled for one target layer and one input resolution: the
// layers the target depends on, in order, with BatchNormalization folded into
// the preceding convolution, ReLU fused into its epilogue and ZeroPadding2D
// merged into the padding of the convolution that reads it. The result is the
// same function as the Keras graph up to float32 rounding. A Net is safe for
// concurrent use by several goroutines.
type Net struct {
	// Target is the layer whose output Forward returns.
	Target string
	// weightsSHA256 identifies the model's weights (Model.WeightsSHA256).
	weightsSHA256 string
	// Size is the square input resolution, in pixels.
	Size int
	// OutH, OutW, OutC are the target layer's output shape for one image.
	OutH, OutW, OutC int

	ops    []*op
	nvals  int // value 0 is the input
	shapes []shape
	// lastUse[v] is the index of the last op that reads value v, so its buffer
	// can be recycled afterwards.
	lastUse []int
	out     int
}

type shape struct{ h, w, c int }

func (s shape) size() int { return s.h * s.w * s.c }

type opKind int

const (
	opConv opKind = iota
	opDepthwise
	opAffine // a BatchNormalization that could not be folded
	opAct
	opAdd
	opConcat
	opMaxPool
	opAvgPool
	opPad
)

type actKind int

const (
	actNone actKind = iota
	actReLU
	actReLUMax // ReLU clipped at actMax (Keras ReLU(max_value=6))
)

// op is one compiled step. Spatial ops read value in[0] of shape inShape and
// write value out; pads are explicit (top, bottom, left, right) so both SAME
// padding and a merged ZeroPadding2D are the same thing here.
type op struct {
	kind    opKind
	name    string // the last Keras layer merged into this op
	in      []int
	out     int
	inShape shape
	outSh   shape

	kh, kw, sh, sw         int
	padT, padB, padL, padR int
	// w is the convolution kernel as a (kh·kw·cin)×cout row-major matrix (the
	// Keras HWIO layout read as a matrix), or the depthwise kernel as
	// kh·kw rows of cin. For opAffine it is the per-channel scale.
	w    []float32
	bias []float32 // per output channel; nil means zero
	act  actKind
	max  float32
}

// layerRef is what a compiled Keras layer output refers to: a value plus a
// zero padding not yet applied (from ZeroPadding2D), which a convolution
// absorbs into its own padding.
type layerRef struct {
	val                    int
	padT, padB, padL, padR int
	producer               *op // the op whose epilogue may still absorb BN/ReLU; nil if none
	layer                  *layerSpec
}

func (r layerRef) padded() bool { return r.padT|r.padB|r.padL|r.padR != 0 }

// Compile prepares the forward pass from the input to layer target at input
// resolution size×size. Layers after the target are ignored, so the networks
// can run at resolutions their classifier heads were not built for.
func (m *Model) Compile(target string, size int) (*Net, error) {
	tl, ok := m.byName[target]
	if !ok {
		return nil, fmt.Errorf("%s: no layer named %q (see Model.Layers for the list)", m.Dir, target)
	}
	if size < 1 {
		return nil, fmt.Errorf("input size %d: must be positive", size)
	}
	// Keep only the target's ancestors; count their consumers so a fusion never
	// hides a tensor that some other needed layer reads.
	need := map[string]bool{}
	var mark func(l *layerSpec)
	mark = func(l *layerSpec) {
		if need[l.Name] {
			return
		}
		need[l.Name] = true
		for _, in := range l.inputs {
			mark(m.byName[in])
		}
	}
	mark(tl)
	uses := map[string]int{}
	for _, l := range m.layers {
		if need[l.Name] {
			for _, in := range l.inputs {
				uses[in]++
			}
		}
	}
	// fusable reports whether the output of layer name may disappear into its
	// single consumer.
	fusable := func(name string) bool { return name != target && uses[name] == 1 }

	n := &Net{Target: target, Size: size, weightsSHA256: m.WeightsSHA256}
	refs := map[string]layerRef{}
	newVal := func(s shape) int {
		n.shapes = append(n.shapes, s)
		n.nvals++
		return n.nvals - 1
	}
	var cur string // the layer being compiled, to label ops for errors and profiles
	emit := func(o *op) {
		o.name = cur
		o.out = newVal(o.outSh)
		n.ops = append(n.ops, o)
	}
	// materialize applies a pending ZeroPadding2D for consumers that cannot absorb it.
	materialize := func(r layerRef) layerRef {
		if !r.padded() {
			return r
		}
		s := n.shapes[r.val]
		o := &op{kind: opPad, in: []int{r.val}, inShape: s,
			padT: r.padT, padB: r.padB, padL: r.padL, padR: r.padR,
			outSh: shape{s.h + r.padT + r.padB, s.w + r.padL + r.padR, s.c}}
		emit(o)
		return layerRef{val: o.out, layer: r.layer}
	}
	for _, l := range m.layers {
		if !need[l.Name] {
			continue
		}
		cur = l.Name
		c := &l.Config
		if c.DataFormat != "" && c.DataFormat != "channels_last" {
			return nil, fmt.Errorf("%s: layer %q data_format %q; only channels_last is supported", m.Dir, l.Name, c.DataFormat)
		}
		ins := make([]layerRef, len(l.inputs))
		for i, in := range l.inputs {
			ins[i] = refs[in]
		}
		var ref layerRef
		var err error
		switch l.ClassName {
		case "InputLayer":
			ref = layerRef{val: newVal(shape{size, size, 3})}
		case "ZeroPadding2D":
			ref, err = zeroPadding(l, ins)
			if err == nil && l.Name == target {
				ref = materialize(ref)
			}
		case "Conv2D", "DepthwiseConv2D":
			var o *op
			o, err = m.conv(l, ins, n.shapes)
			if err == nil {
				emit(o)
				ref = layerRef{val: o.out, producer: o}
			}
		case "BatchNormalization":
			ref, err = m.batchNorm(l, ins, n.shapes, fusable, materialize, emit)
		case "ReLU", "Activation":
			ref, err = activation(l, ins, n.shapes, fusable, materialize, emit)
		case "Add", "Concatenate":
			for i := range ins {
				ins[i] = materialize(ins[i])
			}
			ref, err = merge(l, ins, n.shapes, emit)
		case "MaxPooling2D", "AveragePooling2D":
			var o *op
			o, err = pool(l, materialize(ins[0]), n.shapes)
			if err == nil {
				emit(o)
				ref = layerRef{val: o.out}
			}
		default:
			return nil, fmt.Errorf("%s: layer %q is a %s, which the Go forward pass does not implement (supported: Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Activation, Add, Concatenate, ZeroPadding2D, MaxPooling2D, AveragePooling2D)", m.Dir, l.Name, l.ClassName)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: layer %q: %w", m.Dir, l.Name, err)
		}
		ref.layer = l
		if ref.producer != nil {
			ref.producer.name = l.Name
		}
		refs[l.Name] = ref
	}
	n.out = refs[target].val
	s := n.shapes[n.out]
	if s.h < 1 || s.w < 1 {
		return nil, fmt.Errorf("%s: at %d px the output of %q would be %dx%d; use a larger input size", m.Dir, size, target, s.h, s.w)
	}
	n.OutH, n.OutW, n.OutC = s.h, s.w, s.c
	n.lastUse = make([]int, n.nvals)
	for i := range n.lastUse {
		n.lastUse[i] = -1
	}
	for i, o := range n.ops {
		for _, v := range o.in {
			n.lastUse[v] = i
		}
	}
	return n, nil
}

func pair(v []int, what string) (int, int, error) {
	if len(v) != 2 || v[0] < 1 || v[1] < 1 {
		return 0, 0, fmt.Errorf("%s %v: want two positive integers", what, v)
	}
	return v[0], v[1], nil
}

// samePad returns TensorFlow's SAME padding for one dimension: the output is
// ceil(in/stride) and the extra row goes at the end.
func samePad(in, k, s int) (out, before, after int) {
	out = (in + s - 1) / s
	total := max((out-1)*s+k-in, 0)
	return out, total / 2, total - total/2
}

// spatial computes the output size and padding of a windowed op on an input
// that may carry a pending zero padding.
func spatial(o *op, r layerRef, s shape, padding json.RawMessage) error {
	var mode string
	if err := json.Unmarshal(padding, &mode); err != nil {
		return fmt.Errorf("padding %s: want \"valid\" or \"same\"", padding)
	}
	h, w := s.h+r.padT+r.padB, s.w+r.padL+r.padR
	o.padT, o.padB, o.padL, o.padR = r.padT, r.padB, r.padL, r.padR
	switch mode {
	case "valid":
		o.outSh.h = (h-o.kh)/o.sh + 1
		o.outSh.w = (w-o.kw)/o.sw + 1
		if h < o.kh || w < o.kw {
			return fmt.Errorf("input %dx%d is smaller than the %dx%d window; use a larger input size", h, w, o.kh, o.kw)
		}
	case "same":
		var t, b, l, rr int
		o.outSh.h, t, b = samePad(h, o.kh, o.sh)
		o.outSh.w, l, rr = samePad(w, o.kw, o.sw)
		o.padT += t
		o.padB += b
		o.padL += l
		o.padR += rr
	default:
		return fmt.Errorf("padding %q: want \"valid\" or \"same\"", mode)
	}
	return nil
}

func zeroPadding(l *layerSpec, ins []layerRef) (layerRef, error) {
	// Keras writes padding as p, [ph, pw] or [[top, bottom], [left, right]].
	var p [2][2]int
	var flat []int
	var one int
	switch {
	case json.Unmarshal(l.Config.Padding, &p) == nil:
	case json.Unmarshal(l.Config.Padding, &flat) == nil && len(flat) == 2:
		p = [2][2]int{{flat[0], flat[0]}, {flat[1], flat[1]}}
	case json.Unmarshal(l.Config.Padding, &one) == nil:
		p = [2][2]int{{one, one}, {one, one}}
	default:
		return layerRef{}, fmt.Errorf("padding %s: want [[top, bottom], [left, right]]", l.Config.Padding)
	}
	r := ins[0]
	for _, v := range []int{p[0][0], p[0][1], p[1][0], p[1][1]} {
		if v < 0 {
			return layerRef{}, fmt.Errorf("padding %s: negative", l.Config.Padding)
		}
	}
	r.padT += p[0][0]
	r.padB += p[0][1]
	r.padL += p[1][0]
	r.padR += p[1][1]
	r.producer = nil
	return r, nil
}

func activationOf(name string) (actKind, error) {
	switch name {
	case "", "linear":
		return actNone, nil
	case "relu":
		return actReLU, nil
	}
	return 0, fmt.Errorf("activation %q: only linear and relu are supported", name)
}

func (m *Model) conv(l *layerSpec, ins []layerRef, shapes []shape) (*op, error) {
	c := &l.Config
	r := ins[0]
	s := shapes[r.val]
	o := &op{kind: opConv, in: []int{r.val}, inShape: s}
	var err error
	if o.kh, o.kw, err = pair(c.KernelSize, "kernel_size"); err != nil {
		return nil, err
	}
	if o.sh, o.sw, err = pair(c.Strides, "strides"); err != nil {
		return nil, err
	}
	if c.DilationRate != nil && (len(c.DilationRate) != 2 || c.DilationRate[0] != 1 || c.DilationRate[1] != 1) {
		return nil, fmt.Errorf("dilation_rate %v: only [1, 1] is supported", c.DilationRate)
	}
	if o.act, err = activationOf(c.Activation); err != nil {
		return nil, err
	}
	if err := spatial(o, r, s, c.Padding); err != nil {
		return nil, err
	}
	if l.ClassName == "DepthwiseConv2D" {
		if c.DepthMultiplier != 1 {
			return nil, fmt.Errorf("depth_multiplier %d: only 1 is supported", c.DepthMultiplier)
		}
		o.kind = opDepthwise
		o.outSh.c = s.c
		if o.w, err = m.weight(l.Name, "depthwise_kernel", o.kh, o.kw, s.c, 1); err != nil {
			return nil, err
		}
	} else {
		if c.Filters < 1 {
			return nil, fmt.Errorf("filters %d: must be positive", c.Filters)
		}
		o.outSh.c = c.Filters
		if o.w, err = m.weight(l.Name, "kernel", o.kh, o.kw, s.c, c.Filters); err != nil {
			return nil, err
		}
	}
	// Copy: folding BatchNormalization rescales the kernel in place and the
	// Model's weights must stay untouched for other compilations.
	o.w = slices.Clone(o.w)
	if c.UseBias {
		b, err := m.weight(l.Name, "bias", o.outSh.c)
		if err != nil {
			return nil, err
		}
		o.bias = slices.Clone(b)
	}
	return o, nil
}

func (m *Model) batchNorm(l *layerSpec, ins []layerRef, shapes []shape, fusable func(string) bool,
	materialize func(layerRef) layerRef, emit func(*op)) (layerRef, error) {
	c := &l.Config
	r := materialize(ins[0])
	s := shapes[r.val]
	if c.Axis != nil && *c.Axis != -1 && *c.Axis != 3 {
		return layerRef{}, fmt.Errorf("axis %d: only the channel axis (-1 or 3) is supported", *c.Axis)
	}
	mean, err := m.weight(l.Name, "moving_mean", s.c)
	if err != nil {
		return layerRef{}, err
	}
	variance, err := m.weight(l.Name, "moving_variance", s.c)
	if err != nil {
		return layerRef{}, err
	}
	var gamma, beta []float32
	if c.Scale == nil || *c.Scale {
		if gamma, err = m.weight(l.Name, "gamma", s.c); err != nil {
			return layerRef{}, err
		}
	}
	if c.Center == nil || *c.Center {
		if beta, err = m.weight(l.Name, "beta", s.c); err != nil {
			return layerRef{}, err
		}
	}
	// y = (x − mean)·k + beta with k = gamma/√(var+eps), computed in float64.
	scale := make([]float32, s.c)
	shift := make([]float32, s.c)
	for i := range scale {
		k := 1 / math.Sqrt(float64(variance[i])+c.Epsilon)
		if gamma != nil {
			k *= float64(gamma[i])
		}
		b := 0.0
		if beta != nil {
			b = float64(beta[i])
		}
		scale[i] = float32(k)
		shift[i] = float32(b - float64(mean[i])*k)
	}
	p := r.producer
	if p != nil && (p.kind == opConv || p.kind == opDepthwise) && p.act == actNone && fusable(r.layer.Name) {
		// Fold into the convolution: scale each output channel's kernel column
		// and bias. Both kernel layouts have the output channel innermost.
		for i := range p.w {
			p.w[i] *= scale[i%s.c]
		}
		bias := make([]float32, s.c)
		for i := range bias {
			b := 0.0
			if p.bias != nil {
				b = float64(p.bias[i])
			}
			bias[i] = float32(b*float64(scale[i]) + float64(shift[i]))
		}
		p.bias = bias
		return layerRef{val: r.val, producer: p}, nil
	}
	o := &op{kind: opAffine, in: []int{r.val}, inShape: s, outSh: s, w: scale, bias: shift}
	emit(o)
	return layerRef{val: o.out, producer: o}, nil
}

func activation(l *layerSpec, ins []layerRef, shapes []shape, fusable func(string) bool,
	materialize func(layerRef) layerRef, emit func(*op)) (layerRef, error) {
	c := &l.Config
	act := actReLU
	var mx float32
	if l.ClassName == "ReLU" {
		if c.NegativeSlope != 0 || c.Threshold != 0 {
			return layerRef{}, fmt.Errorf("ReLU with negative_slope %g, threshold %g: only 0, 0 is supported", c.NegativeSlope, c.Threshold)
		}
		if c.MaxValue != nil {
			act, mx = actReLUMax, float32(*c.MaxValue)
		}
	} else {
		a, err := activationOf(c.Activation)
		if err != nil {
			return layerRef{}, err
		}
		if a == actNone {
			// An identity. Its input may have other readers, so nothing after
			// it may fuse into the input's producer.
			r := ins[0]
			r.producer = nil
			return r, nil
		}
	}
	r := materialize(ins[0])
	if p := r.producer; p != nil && p.act == actNone && fusable(r.layer.Name) {
		p.act, p.max = act, mx
		return layerRef{val: r.val, producer: p}, nil
	}
	s := shapes[r.val]
	o := &op{kind: opAct, in: []int{r.val}, inShape: s, outSh: s, act: act, max: mx}
	emit(o)
	return layerRef{val: o.out, producer: o}, nil
}

func merge(l *layerSpec, ins []layerRef, shapes []shape, emit func(*op)) (layerRef, error) {
	if len(ins) < 2 {
		return layerRef{}, fmt.Errorf("%s needs at least two inputs, has %d", l.ClassName, len(ins))
	}
	s0 := shapes[ins[0].val]
	o := &op{in: make([]int, len(ins)), inShape: s0, outSh: s0}
	if l.ClassName == "Add" {
		o.kind = opAdd
	} else {
		o.kind = opConcat
		if a := l.Config.Axis; a != nil && *a != -1 && *a != 3 {
			return layerRef{}, fmt.Errorf("axis %d: only the channel axis (-1 or 3) is supported", *a)
		}
		o.outSh.c = 0
	}
	for i, r := range ins {
		s := shapes[r.val]
		if s.h != s0.h || s.w != s0.w || (o.kind == opAdd && s.c != s0.c) {
			return layerRef{}, fmt.Errorf("input shapes %v and %v do not match", s0, s)
		}
		o.in[i] = r.val
		if o.kind == opConcat {
			o.outSh.c += s.c
		}
	}
	emit(o)
	return layerRef{val: o.out}, nil
}

func pool(l *layerSpec, r layerRef, shapes []shape) (*op, error) {
	c := &l.Config
	s := shapes[r.val]
	o := &op{kind: opMaxPool, in: []int{r.val}, inShape: s}
	if l.ClassName == "AveragePooling2D" {
		o.kind = opAvgPool
	}
	var err error
	if o.kh, o.kw, err = pair(c.PoolSize, "pool_size"); err != nil {
		return nil, err
	}
	strides := c.Strides
	if strides == nil {
		strides = c.PoolSize // Keras's default
	}
	if o.sh, o.sw, err = pair(strides, "strides"); err != nil {
		return nil, err
	}
	if err := spatial(o, r, s, c.Padding); err != nil {
		return nil, err
	}
	o.outSh.c = s.c
	return o, nil
}
