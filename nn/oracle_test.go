package nn

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mct/internal/testenv"
)

// torchPython is Debian's interpreter, the one python3-torch is installed for.
const torchPython = testenv.Python

func writeF32(t *testing.T, path string, x []float32) {
	t.Helper()
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

func hostOf(b Backend, x Buf) []float32 {
	h := make([]float32, x.Len())
	b.Download(h, x)
	return h
}

// sameTensor checks max|got−want| ≤ rtol·max(max|want|, floor): relative to the
// tensor's scale, as float32 kernels with different summation orders agree.
func sameTensor(t *testing.T, what string, got, want []float32, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, PyTorch has %d", what, len(got), len(want))
	}
	scale, worst, wi := 1e-3, 0.0, 0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || d != d {
			worst, wi = d, i
		}
	}
	if !(worst <= rtol*scale) {
		t.Errorf("%s[%d] = %.9g, PyTorch %.9g (max error %.2e > %.0e × scale %.3g)", what, wi, got[wi], want[wi], worst, rtol, scale)
	} else {
		t.Logf("%s: max error %.2e (%.2e of scale)", what, worst, worst/scale)
	}
}

// TestOracleTorch runs the same probes in PyTorch (nn.Linear, BatchNorm1d,
// leaky_relu, cross_entropy, clip_grad_norm_, Adam) with the same weights and
// inputs, and compares logits, loss, gradients, the clip norm, the parameters after
// one Adam step and after four updates, and the BN buffers.
func TestOracleTorch(t *testing.T) {
	script, err := filepath.Abs("testdata/oracle.py")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		logits, grads, init, params, final, buffers []float32
		loss, norm                                  float32
	}
	cases := []Config{
		{Arch: "fcnn", In: 12, Classes: 5, Hidden: []int{16, 16, 16}, Temperature: 1.5},
		{Arch: "mlp", In: 12, Classes: 5, Hidden: []int{16, 8}, Temperature: 0.7, Slope: 0.1},
		{Arch: "linear", In: 12, Classes: 5, Temperature: 2},
	}
	const n, steps = 32, 4
	dir := t.TempDir()
	var dirs []string
	results := map[string]result{}
	for ci, cfg := range cases {
		for _, mode := range []Mode{Train, Eval} {
			name := fmt.Sprintf("%s-%v", cfg.Arch, map[Mode]string{Train: "train", Eval: "eval"}[mode])
			d := filepath.Join(dir, name)
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			b, p, x, labels := setup(t, cfg, n, uint64(100+ci))
			init := hostOf(b, p.Flat())
			writeF32(t, filepath.Join(d, "params.f32"), init)
			writeF32(t, filepath.Join(d, "buffers.f32"), hostOf(b, p.bufFlat))
			writeF32(t, filepath.Join(d, "x.f32"), to32(x))
			lb := labelsBuf(b, labels)
			writeF32(t, filepath.Join(d, "y.f32"), hostOf(b, lb))

			tape := p.NewTape(n, false)
			logits := p.Forward(tape, upload(b, x), n, mode)
			dl := b.Alloc(n * cfg.Classes)
			r := result{init: init}
			r.loss = CrossEntropy(b, logits, n, cfg.Classes, lb, dl, 1)
			r.logits = hostOf(b, logits)
			g := p.NewGrads()
			p.Backward(tape, dl, g)
			r.grads = hostOf(b, g.Flat())
			// Clip at half the norm so clipping is active.
			clip := float32(0.5 * math.Sqrt(b.Dot(g.Flat(), g.Flat(), p.NumParams())))
			r.norm = ClipGradNorm(b, g, clip)
			opt := NewAdam(p, 1e-3)
			opt.WeightDecay = 0.01
			opt.Step(g)
			r.params = hostOf(b, p.Flat())
			for s := 1; s < steps; s++ {
				g.Zero()
				CrossEntropy(b, p.Forward(tape, upload(b, x), n, mode), n, cfg.Classes, lb, dl, 1)
				p.Backward(tape, dl, g)
				g.Clip(clip) // the training loop's clipping, which leaves the norm on the device
				opt.Step(g)
			}
			r.final = hostOf(b, p.Flat())
			r.buffers = hostOf(b, p.bufFlat)
			results[name] = r

			pc := p.Config()
			meta := map[string]any{
				"arch": pc.Arch, "in": pc.In, "classes": pc.Classes, "hidden": pc.Hidden,
				"slope": pc.Slope, "temperature": pc.Temperature, "eps": pc.BNEps, "momentum": pc.BNMomentum,
				"mode": map[Mode]string{Train: "train", Eval: "eval"}[mode], "n": n,
				"lr": 1e-3, "wd": 0.01, "clip": clip, "steps": steps,
			}
			ps, bs := [][2]any{}, [][2]any{}
			for _, q := range p.Params() {
				ps = append(ps, [2]any{q.Name, q.Shape})
			}
			for _, q := range p.Buffers() {
				bs = append(bs, [2]any{q.Name, q.Shape})
			}
			meta["params"], meta["buffers"] = ps, bs
			js, _ := json.Marshal(meta)
			if err := os.WriteFile(filepath.Join(d, "meta.json"), js, 0o644); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, d)
		}
	}
	out, err := exec.Command(torchPython, append([]string{script}, dirs...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 77 || errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		testenv.Missing(t, "%s cannot run PyTorch (%s): install Debian's python3-torch to run the oracle", torchPython, strings.TrimSpace(string(out)))
	}
	if err != nil {
		t.Fatalf("PyTorch oracle failed: %v\n%s", err, out)
	}
	for _, d := range dirs {
		name := filepath.Base(d)
		r := results[name]
		t.Run(name, func(t *testing.T) {
			sameTensor(t, "logits", r.logits, readF32(t, filepath.Join(d, "out_logits.f32")), 1e-5)
			sameTensor(t, "loss", []float32{r.loss}, readF32(t, filepath.Join(d, "out_loss.f32")), 1e-5)
			sameTensor(t, "grads", r.grads, readF32(t, filepath.Join(d, "out_grads.f32")), 1e-5)
			sameTensor(t, "clip norm", []float32{r.norm}, readF32(t, filepath.Join(d, "out_norm.f32")), 1e-5)
			sameTensor(t, "params after Adam", r.params, readF32(t, filepath.Join(d, "out_params.f32")), 1e-5)
			final := readF32(t, filepath.Join(d, "out_params_final.f32"))
			sameTensor(t, fmt.Sprintf("params after %d updates", steps), r.final, final, 1e-5)
			// The updates themselves (≈ steps·lr each) must agree too, up to the float32
			// rounding of the parameters they are added to (1–6e-5 of an update measured).
			got, want := make([]float32, len(final)), make([]float32, len(final))
			for i := range final {
				got[i], want[i] = r.final[i]-r.init[i], final[i]-r.init[i]
			}
			sameTensor(t, fmt.Sprintf("change over %d updates", steps), got, want, 2e-4)
			if len(r.buffers) > 0 {
				sameTensor(t, "BN buffers", r.buffers, readF32(t, filepath.Join(d, "out_buffers.f32")), 1e-5)
			}
		})
	}
}
