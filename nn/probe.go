package nn

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Mode selects BatchNorm and dropout behaviour, as module.train()/eval() in PyTorch.
type Mode int

const (
	// Eval normalises with the running statistics and disables dropout.
	Eval Mode = iota
	// Train normalises with batch statistics, updates the running ones and drops out.
	Train
)

// Config describes a probe.
type Config struct {
	// Arch is "fcnn" (the reference FCNN traced exactly, see Probe), "mlp" (the clean
	// variant: Linear→BatchNorm→LeakyReLU blocks, then a Linear output; the hidden
	// Linears have no bias, which the BatchNorm after them would remove) or "linear".
	Arch        string
	In, Classes int
	// Hidden are the widths; nil means [1024, 1024, 1024]. Ignored by "linear".
	Hidden []int
	// Slope is the LeakyReLU negative slope; 0 means 0.01.
	Slope float32
	// Temperature divides the logits; 0 means 1.
	Temperature float32
	// Dropout is the drop probability after each hidden block; 0 disables it.
	Dropout float32
	// BNMomentum and BNEps default to PyTorch's 0.1 and 1e-5 when 0.
	BNMomentum, BNEps float32
}

// withDefaults fills the zero fields and validates the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Hidden == nil {
		c.Hidden = []int{1024, 1024, 1024}
	}
	c.Hidden = append([]int(nil), c.Hidden...) // the caller may reuse its slice
	if c.Slope == 0 {
		c.Slope = 0.01
	}
	if c.Temperature == 0 {
		c.Temperature = 1
	}
	if c.BNMomentum == 0 {
		c.BNMomentum = 0.1
	}
	if c.BNEps == 0 {
		c.BNEps = 1e-5
	}
	switch {
	case c.In < 1 || c.Classes < 2:
		return c, fmt.Errorf("probe config: In=%d Classes=%d, need In ≥ 1 and Classes ≥ 2", c.In, c.Classes)
	case !(c.Temperature > 0) || !(c.Slope > 0):
		return c, fmt.Errorf("probe config: Temperature=%g Slope=%g, both must be > 0", c.Temperature, c.Slope)
	case c.Dropout < 0 || c.Dropout >= 1:
		return c, fmt.Errorf("probe config: Dropout=%g, need 0 ≤ p < 1", c.Dropout)
	case c.BNMomentum < 0 || c.BNMomentum > 1 || c.BNEps <= 0:
		return c, fmt.Errorf("probe config: BNMomentum=%g BNEps=%g, need momentum in [0,1] and eps > 0", c.BNMomentum, c.BNEps)
	}
	if err := CheckArch(c.Arch, c.Hidden); err != nil {
		return c, fmt.Errorf("probe config: %w", err)
	}
	if c.Arch == "linear" {
		c.Hidden = []int{}
	}
	return c, nil
}

// CheckArch reports whether arch names a probe and hidden fits it: positive widths, and
// for fcnn at least two equal ones. Callers check it before any probe exists (flags).
func CheckArch(arch string, hidden []int) error {
	if arch == "linear" {
		return nil // no hidden layers: the widths are not used
	}
	for _, h := range hidden {
		if h < 1 {
			return fmt.Errorf("hidden width %d, need ≥ 1", h)
		}
	}
	switch arch {
	case "mlp":
	case "fcnn":
		if len(hidden) < 2 {
			return fmt.Errorf("fcnn needs at least 2 hidden widths, got %v (arch mlp takes one)", hidden)
		}
		for _, h := range hidden[1:] {
			if h != hidden[0] {
				return fmt.Errorf("fcnn traces the reference, whose duplicated skips only fit equal widths; got %v (use arch mlp for other widths)", hidden)
			}
		}
	default:
		return fmt.Errorf("arch %q, want fcnn, mlp or linear", arch)
	}
	return nil
}

// block is one Linear layer with what follows it. in lists the activations
// concatenated as its input: -1 is the probe input x, i ≥ 0 the output of block i.
//
// The reference FCNN feeds its last activation twice ([h0, h0], [h0, h1, h1]). Since
// [h, h]·[Wa, Wb]ᵀ = h·(Wa+Wb)ᵀ, a block multiplies its unique sources by an
// effective weight whose repeated column block is summed (Backend.FoldCols), and
// gives that block's gradient to both repeats (UnfoldCols): the same function and
// gradient, with the GEMM work of the duplicated columns (≈40% of the default
// FCNN's) saved.
type block struct {
	in          []int
	inW, out    int
	uniq        []int // distinct sources, in order of first appearance
	uniqW       int
	dup         bool // in = uniq then a repeat of one of them: use an effective weight
	foldOff     int  // the repeated source's columns in uniq (dup only)
	preAct, bn  bool // LeakyReLU right after the Linear; BatchNorm after that
	postAct     bool // LeakyReLU after BatchNorm
	dropout     bool
	w, b        int // indices into Probe.params; b is −1 for a Linear without bias
	gamma, beta int // BN affine parameter indices (bn only)
	runM, runV  int // BN running-statistics indices into Probe.buffers (bn only)
	final       bool
}

// Param is one named tensor of the probe, a view into a flat backend buffer.
type Param struct {
	Name  string
	Shape []int
	W     Buf
	off   int
	size  int
}

// Probe is the per-view MLP. All parameters live in one flat backend buffer (Params
// are views into it, in PyTorch state_dict order), gradients and Adam moments in
// buffers of the same layout, so an optimizer step, a norm or an all-reduce is one
// call over one buffer.
//
// Architectures (LReLU = LeakyReLU(Slope), BN = BatchNorm1d, [a,b] = concatenation):
//
//	fcnn, Hidden = [H]·L: h0 = BN0(LReLU(fc0 x)); h_i = BN_i(LReLU(fc_i [h0,…,h_{i−1},h_{i−1}]))
//	      for 0 < i < L−1; logits = LReLU(fc_{L−1} [h0,…,h_{L−2},h_{L−2}]) / T.
//	      With the default [1024,1024,1024]: fc1 is 2048→1024 and fc2 3072→C, as traced
//	      from the reference (whose skips duplicate the last block, so widths are equal).
//	mlp:  h_i = LReLU(BN_i(fc_i h_{i−1})) for each width; logits = fc_L h_{L−1} / T.
//	      The hidden fc_i have no bias (PyTorch bias=False): BN subtracts the batch
//	      mean right after, so a bias there has no effect and a gradient of exactly
//	      zero whose float noise Adam would turn into ±lr steps (DESIGN.md's reference
//	      FCNN keeps its biases: a LeakyReLU sits between its Linear and BN).
//	linear: logits = fc0 x / T.
//
// Dropout (if set) follows each hidden block's output. Initialisation is PyTorch's
// default (Linear weights and biases U(−1/√fan_in, 1/√fan_in), BN γ=1, β=0, running
// mean 0 and var 1) drawn from the counter RNG, so a seed fixes the weights on every
// backend.
type Probe struct {
	// Reduce, if set, receives every BatchNorm batch reduction (forward statistics in
	// Train mode, backward sums) as a host slice and must replace it, in place, by its
	// sum over the data-parallel replicas. Every slice ends with the local row count,
	// so summing it gives the global count. nil means the batch is this replica's own.
	// Replicas must hold the same running statistics (the forward sums are shifted
	// by the running mean); they do when started from one state and always reduced.
	Reduce func(host []float32)
	// DropoutRowBase is the global index of this replica's first row, so replicas of
	// a data-parallel pool draw different dropout masks for their different rows (the
	// masks then do not depend on how the batch is split).
	DropoutRowBase uint32
	// DropoutStepAt, if set, is a device buffer whose first element holds (as
	// IndexBits) the dropout RNG step of the next Train forward, which must be
	// NumBatchesTracked()+1: the caller uploads it with its inputs, so a recorded step
	// replays the same launches every update. nil: the step is passed as an argument.
	DropoutStepAt Buf

	b       Backend
	cfg     Config
	seed    uint64
	blocks  []block
	params  []*Param
	buffers []*Param
	flat    Buf // all parameters
	bufFlat Buf // all BN running statistics
	nParams int
	nBufs   int
	// forwards counts Train-mode forwards: the dropout key's Step, and PyTorch's
	// num_batches_tracked (every BN layer sees every Train forward).
	forwards int64
	scratch  []float32 // host staging for Reduce
}

// NewProbe builds a probe with PyTorch's default initialisation from seed.
func NewProbe(b Backend, cfg Config, seed uint64) (*Probe, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Probe{b: b, cfg: cfg, seed: seed}
	p.layout()
	p.flat = b.Alloc(p.nParams)
	p.bufFlat = b.Alloc(p.nBufs)
	for _, q := range p.params {
		q.W = b.View(p.flat, q.off, q.size)
	}
	for _, q := range p.buffers {
		q.W = b.View(p.bufFlat, q.off, q.size)
	}
	p.init()
	return p, nil
}

// layout fixes the blocks and the parameter order (PyTorch registration order:
// fc0, bn0, fc1, bn1, …).
func (p *Probe) layout() {
	c := p.cfg
	addParam := func(name string, shape ...int) int {
		n := 1
		for _, s := range shape {
			n *= s
		}
		p.params = append(p.params, &Param{Name: name, Shape: shape, off: p.nParams, size: n})
		p.nParams += n
		return len(p.params) - 1
	}
	addBuf := func(name string, n int) int {
		p.buffers = append(p.buffers, &Param{Name: name, Shape: []int{n}, off: p.nBufs, size: n})
		p.nBufs += n
		return len(p.buffers) - 1
	}
	width := func(src []int) int {
		w := 0
		for _, s := range src {
			if s < 0 {
				w += c.In
			} else {
				w += p.blocks[s].out
			}
		}
		return w
	}
	var nHidden int
	switch c.Arch {
	case "fcnn":
		nHidden = len(c.Hidden) - 1
	case "mlp":
		nHidden = len(c.Hidden)
	}
	for i := 0; i <= nHidden; i++ {
		bl := block{final: i == nHidden, out: c.Classes}
		switch {
		case i == 0:
			bl.in = []int{-1}
		case c.Arch == "fcnn":
			for j := 0; j < i; j++ {
				bl.in = append(bl.in, j)
			}
			bl.in = append(bl.in, i-1)
		default:
			bl.in = []int{i - 1}
		}
		bl.inW = width(bl.in)
		slot := map[int]int{}
		for _, src := range bl.in {
			if _, ok := slot[src]; !ok {
				slot[src] = bl.uniqW
				bl.uniq = append(bl.uniq, src)
				bl.uniqW += width([]int{src})
			}
		}
		if len(bl.uniq) < len(bl.in) {
			// FoldCols handles one trailing repeat, the reference's only pattern.
			if len(bl.in) != len(bl.uniq)+1 || slices.Compare(bl.in[:len(bl.uniq)], bl.uniq) != 0 {
				panic(fmt.Sprintf("nn: block %d input %v repeats other than its last entry", i, bl.in))
			}
			bl.dup, bl.foldOff = true, slot[bl.in[len(bl.in)-1]]
		}
		if !bl.final {
			bl.out = c.Hidden[i]
			bl.bn, bl.dropout = true, c.Dropout > 0
			bl.preAct, bl.postAct = c.Arch == "fcnn", c.Arch == "mlp"
		} else {
			bl.preAct = c.Arch == "fcnn"
		}
		bl.w, bl.b = addParam(fmt.Sprintf("fc%d.weight", i), bl.out, bl.inW), -1
		if c.Arch != "mlp" || bl.final {
			bl.b = addParam(fmt.Sprintf("fc%d.bias", i), bl.out)
		}
		if bl.bn {
			bl.gamma = addParam(fmt.Sprintf("bn%d.weight", i), bl.out)
			bl.beta = addParam(fmt.Sprintf("bn%d.bias", i), bl.out)
			bl.runM = addBuf(fmt.Sprintf("bn%d.running_mean", i), bl.out)
			bl.runV = addBuf(fmt.Sprintf("bn%d.running_var", i), bl.out)
		}
		p.blocks = append(p.blocks, bl)
	}
}

// streamInit is the RNG stream of the initial weights (Step = parameter index).
const streamInit = StreamDropout - 1

func (p *Probe) init() {
	host := make([]float32, p.nParams)
	for _, bl := range p.blocks {
		bound := 1 / math.Sqrt(float64(bl.inW))
		for _, pi := range []int{bl.w, bl.b} {
			if pi < 0 {
				continue
			}
			q := p.params[pi]
			key := RNGKey{Seed: p.seed, Step: uint32(pi), Stream: streamInit}
			for i := 0; i < q.size; i++ {
				u := float64(Uniform(key, uint32(i), 0))
				host[q.off+i] = float32(bound * (2*u - 1))
			}
		}
		if bl.bn {
			g := p.params[bl.gamma]
			for i := 0; i < g.size; i++ {
				host[g.off+i] = 1
			}
		}
	}
	p.b.Upload(p.flat, host)
	bufs := make([]float32, p.nBufs)
	for _, bl := range p.blocks {
		if bl.bn {
			v := p.buffers[bl.runV]
			for i := 0; i < v.size; i++ {
				bufs[v.off+i] = 1
			}
		}
	}
	p.b.Upload(p.bufFlat, bufs)
	p.forwards = 0
}

// Free releases the parameter and buffer memory; the probe must not be used afterwards.
func (p *Probe) Free() {
	p.b.Free(p.flat)
	p.b.Free(p.bufFlat)
}

// Config returns the probe's configuration with defaults filled in.
func (p *Probe) Config() Config { return p.cfg }

// Backend returns the backend the probe lives on.
func (p *Probe) Backend() Backend { return p.b }

// Params returns the learnable tensors in PyTorch parameters() order.
func (p *Probe) Params() []*Param { return p.params }

// Buffers returns the BatchNorm running statistics (running_mean, running_var per
// layer); num_batches_tracked is NumBatchesTracked.
func (p *Probe) Buffers() []*Param { return p.buffers }

// NumBatchesTracked is PyTorch's num_batches_tracked of every BN layer: the number
// of Train-mode forwards so far.
func (p *Probe) NumBatchesTracked() int64 { return p.forwards }

// NumParams is the number of learnable scalars.
func (p *Probe) NumParams() int { return p.nParams }

// GemmFLOPs is the arithmetic of the matrix products that one Forward and one Backward
// over rows examples issue, 2·m·n·k per product: a block with a repeated input
// multiplies by its folded weight once, and no gradient is formed for the input x. mct
// bench's FLOPs per update and its fraction of the GEMM rate are built from it; DESIGN.md's
// estimate, 18·params·rows per view and update, overcounts the reference fcnn by 1.6×
// (its fc1 and fc2 weights are 2048 and 3072 wide, their products 1024 and 2048).
func (p *Probe) GemmFLOPs(rows int) (forward, backward float64) {
	for _, bl := range p.blocks {
		f := 2 * float64(rows) * float64(bl.out) * float64(bl.uniqW)
		forward += f
		backward += f // the weight's gradient
		if bl.gradsInput() {
			backward += f // the gradient of the block's input, unless that is x alone
		}
	}
	return forward, backward
}

// Flat is the buffer holding all parameters, in Params order.
func (p *Probe) Flat() Buf { return p.flat }

// Checksum is the SHA-256 (hex) of all parameters as little-endian float32 in Params
// order: equal checksums mean bit-identical weights.
func (p *Probe) Checksum() string {
	host := make([]float32, p.nParams)
	p.b.Download(host, p.flat)
	h := sha256.New()
	var buf [4]byte
	for _, v := range host {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
		h.Write(buf[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stateMagic starts SaveState's encoding; the version follows it.
const stateMagic = "MCTPROBE"
const stateVersion = 1

// fingerprint names the architecture in saved state, so a state is only loaded into
// a probe of the same shape.
func (p *Probe) fingerprint() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s in=%d classes=%d", p.cfg.Arch, p.cfg.In, p.cfg.Classes)
	for _, q := range p.params {
		fmt.Fprintf(&s, " %s%v", q.Name, q.Shape)
	}
	return s.String()
}

// SaveState encodes the weights, BN running statistics, the Train-forward count and
// the seed (which keys dropout), little-endian, after a header naming the
// architecture; LoadState restores exactly this.
func (p *Probe) SaveState() ([]byte, error) {
	fp := p.fingerprint()
	out := make([]byte, 0, 32+len(fp)+4*(p.nParams+p.nBufs))
	out = append(out, stateMagic...)
	out = binary.LittleEndian.AppendUint32(out, stateVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(fp)))
	out = append(out, fp...)
	out = binary.LittleEndian.AppendUint64(out, uint64(p.forwards))
	out = binary.LittleEndian.AppendUint64(out, p.seed)
	out = appendFloats(out, p.b, p.flat, p.nParams)
	out = appendFloats(out, p.b, p.bufFlat, p.nBufs)
	return out, nil
}

// LoadState restores what SaveState wrote into a probe of the same architecture.
func (p *Probe) LoadState(data []byte) error {
	r := reader{data: data, what: "probe state"}
	if string(r.bytes(len(stateMagic))) != stateMagic {
		return fmt.Errorf("probe state: bad magic, not a probe state")
	}
	if v := r.u32(); v != stateVersion && r.err == nil {
		return fmt.Errorf("probe state: format version %d, this build reads %d", v, stateVersion)
	}
	fp := string(r.bytes(int(r.u32())))
	if r.err == nil && fp != p.fingerprint() {
		return fmt.Errorf("probe state: saved for %q, this probe is %q", fp, p.fingerprint())
	}
	forwards := int64(r.u64())
	seed := r.u64()
	w := r.floats(p.nParams)
	bufs := r.floats(p.nBufs)
	if r.err != nil {
		return r.err
	}
	if len(r.data) != 0 {
		return fmt.Errorf("probe state: %d trailing bytes", len(r.data))
	}
	p.b.Upload(p.flat, w)
	p.b.Upload(p.bufFlat, bufs)
	p.forwards, p.seed = forwards, seed
	return nil
}

func appendFloats(out []byte, b Backend, buf Buf, n int) []byte {
	host := make([]float32, n)
	b.Download(host, buf)
	for _, v := range host {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out
}

// reader decodes little-endian fields, remembering the first short read.
type reader struct {
	data []byte
	what string
	err  error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.data) {
		r.err = fmt.Errorf("%s: truncated (need %d more bytes, have %d)", r.what, n, len(r.data))
		return nil
	}
	b := r.data[:n]
	r.data = r.data[n:]
	return b
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) floats(n int) []float32 {
	b := r.bytes(4 * n)
	if b == nil {
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			r.err = fmt.Errorf("%s: value %d is %g", r.what, i, v)
			return nil
		}
		out[i] = v
	}
	return out
}
