package pretrained

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mct/data"
)

// A synthetic model in the exact on-disk form nsfwjs uses, small enough to
// check every layer against a float64 reference written straight from the
// Keras definitions (no fusion, no GEMM).

type synthLayer struct {
	name, class string
	config      map[string]any
	inputs      []string
}

type synthWeight struct {
	name  string
	shape []int
	quant string // "", "uint8" or "uint16"
	min   float64
	scale float64
}

func bundle(lit string) string {
	return `!function(e){if("object"==typeof exports&&"undefined"!=typeof module)module.exports=e();}(function(){return function e(a,n,i){}({1:[function(e,a,n){a.exports=` +
		lit + `},{}]},{},[1])(1)});`
}

// writeSynth writes model.min.js and two weight shards into dir; edit, if not
// nil, may corrupt the topology object before it is written.
func writeSynth(t *testing.T, dir string, layers []synthLayer, weights []synthWeight, rng *rand.Rand, edit func(map[string]any)) {
	t.Helper()
	var jl []any
	for _, l := range layers {
		cfg := map[string]any{"name": l.name}
		for k, v := range l.config {
			cfg[k] = v
		}
		var in []any
		for _, s := range l.inputs {
			in = append(in, []any{s, 0, 0, map[string]any{}})
		}
		nodes := []any{}
		if in != nil {
			nodes = []any{in}
		}
		jl = append(jl, map[string]any{"name": l.name, "class_name": l.class, "config": cfg, "inbound_nodes": nodes})
	}
	var specs []any
	var data []byte
	for _, w := range weights {
		n := 1
		for _, d := range w.shape {
			n *= d
		}
		spec := map[string]any{"name": w.name, "shape": w.shape, "dtype": "float32"}
		switch w.quant {
		case "":
			for range n {
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(rng.NormFloat64()*0.3)))
			}
		case "uint8":
			for range n {
				data = append(data, byte(rng.IntN(256)))
			}
		case "uint16":
			for range n {
				data = binary.LittleEndian.AppendUint16(data, uint16(rng.IntN(1<<16)))
			}
		}
		if w.quant != "" {
			spec["quantization"] = map[string]any{"min": w.min, "scale": w.scale, "dtype": w.quant}
		}
		specs = append(specs, spec)
	}
	top := map[string]any{
		"modelTopology": map[string]any{"keras_version": "2.2.4", "backend": "tensorflow", "model_config": map[string]any{
			"class_name": "Model", "config": map[string]any{"name": "synth", "layers": jl}}},
		"weightsManifest": []any{map[string]any{"paths": []string{"group1-shard1of2", "group1-shard2of2"}, "weights": specs}},
	}
	if edit != nil {
		edit(top)
	}
	js, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("model.min.js", bundle(string(js)))
	half := len(data) / 2
	write("group1-shard1of2.min.js", bundle(`"`+base64.StdEncoding.EncodeToString(data[:half])+`"`))
	write("group1-shard2of2.min.js", bundle(`"`+base64.StdEncoding.EncodeToString(data[half:])+`"`))
}

// synthGraph exercises every supported layer type and the fusion cases: a
// ZeroPadding2D absorbed by a strided convolution, BatchNormalization folded
// or not (after an Add), ReLU6, a tensor with two consumers, SAME padding
// with odd and even sizes, asymmetric kernels and strides, pools with SAME
// padding, Concatenate and Add.
func synthGraph() ([]synthLayer, []synthWeight) {
	conv := func(filters int, k, s []int, pad string, bias bool, act string) map[string]any {
		return map[string]any{"filters": filters, "kernel_size": k, "strides": s, "padding": pad,
			"use_bias": bias, "activation": act, "data_format": "channels_last", "dilation_rate": []int{1, 1}}
	}
	bn := func(scale bool) map[string]any {
		return map[string]any{"axis": -1, "epsilon": 0.001, "center": true, "scale": scale}
	}
	layers := []synthLayer{
		{"input_1", "InputLayer", map[string]any{"batch_input_shape": []any{nil, 224, 224, 3}}, nil},
		{"pad", "ZeroPadding2D", map[string]any{"padding": [][]int{{0, 1}, {0, 1}}}, []string{"input_1"}},
		{"c1", "Conv2D", conv(8, []int{3, 3}, []int{2, 2}, "valid", false, "linear"), []string{"pad"}},
		{"bn1", "BatchNormalization", bn(true), []string{"c1"}},
		{"r1", "ReLU", map[string]any{"max_value": 6, "negative_slope": 0, "threshold": 0}, []string{"bn1"}},
		{"dw", "DepthwiseConv2D", map[string]any{"kernel_size": []int{3, 3}, "strides": []int{2, 2}, "padding": "same",
			"depth_multiplier": 1, "use_bias": true, "activation": "linear"}, []string{"r1"}},
		{"bn2", "BatchNormalization", bn(true), []string{"dw"}},
		{"a2", "Activation", map[string]any{"activation": "relu"}, []string{"bn2"}},
		{"c3", "Conv2D", conv(8, []int{1, 1}, []int{1, 1}, "valid", true, "relu"), []string{"r1"}},
		{"mp", "MaxPooling2D", map[string]any{"pool_size": []int{3, 3}, "strides": []int{2, 2}, "padding": "same"}, []string{"c3"}},
		{"cat", "Concatenate", map[string]any{"axis": 3}, []string{"a2", "mp"}},
		{"ap", "AveragePooling2D", map[string]any{"pool_size": []int{3, 3}, "strides": []int{1, 1}, "padding": "same"}, []string{"cat"}},
		{"c4", "Conv2D", conv(16, []int{3, 3}, []int{1, 1}, "same", false, "linear"), []string{"cat"}},
		{"bn4", "BatchNormalization", bn(false), []string{"c4"}},
		{"add", "Add", nil, []string{"ap", "bn4"}},
		{"bn5", "BatchNormalization", bn(true), []string{"add"}},
		{"out", "ReLU", map[string]any{}, []string{"bn5"}},
		{"c6", "Conv2D", conv(4, []int{3, 1}, []int{2, 1}, "same", false, "linear"), []string{"r1"}},
		{"mp2", "MaxPooling2D", map[string]any{"pool_size": []int{2, 2}, "padding": "valid"}, []string{"r1"}},
		{"ap2", "AveragePooling2D", map[string]any{"pool_size": []int{2, 3}, "strides": []int{2, 2}, "padding": "same"}, []string{"c6"}},
		// A linear Activation must not let bn6 fold into c6, which add6 reads.
		{"lin", "Activation", map[string]any{"activation": "linear"}, []string{"c6"}},
		{"bn6", "BatchNormalization", bn(true), []string{"lin"}},
		{"add6", "Add", nil, []string{"c6", "bn6"}},
	}
	bnw := func(name string, c int, scale bool) []synthWeight {
		w := []synthWeight{
			{name + "/beta", []int{c}, "uint8", -1, 0.01},
			{name + "/moving_mean", []int{c}, "", 0, 0},
			{name + "/moving_variance", []int{c}, "uint8", 0, 0.02},
		}
		if scale {
			w = append(w, synthWeight{name + "/gamma", []int{c}, "uint16", 0.5, 1e-5})
		}
		return w
	}
	weights := []synthWeight{{"c1/kernel", []int{3, 3, 3, 8}, "uint8", -1, 2.0 / 255}}
	weights = append(weights, bnw("bn1", 8, true)...)
	weights = append(weights,
		synthWeight{"dw/depthwise_kernel", []int{3, 3, 8, 1}, "", 0, 0},
		synthWeight{"dw/bias", []int{8}, "", 0, 0})
	weights = append(weights, bnw("bn2", 8, true)...)
	weights = append(weights,
		synthWeight{"c3/kernel", []int{1, 1, 8, 8}, "", 0, 0},
		synthWeight{"c3/bias", []int{8}, "uint8", -0.5, 1.0 / 255},
		synthWeight{"c4/kernel", []int{3, 3, 16, 16}, "", 0, 0})
	weights = append(weights, bnw("bn4", 16, false)...)
	weights = append(weights, bnw("bn5", 16, true)...)
	weights = append(weights, synthWeight{"c6/kernel", []int{3, 1, 8, 4}, "", 0, 0})
	weights = append(weights, bnw("bn6", 4, true)...)
	return layers, weights
}

// t4 is a float64 NHWC tensor of the reference forward pass.
type t4 struct {
	n, h, w, c int
	d          []float64
}

func (a t4) at(b, y, x, c int) float64 { return a.d[((b*a.h+y)*a.w+x)*a.c+c] }

func newT4(n, h, w, c int) t4 { return t4{n, h, w, c, make([]float64, n*h*w*c)} }

// refPads returns Keras's output size and leading padding for one dimension.
func refPads(in, k, s int, same bool) (out, before int) {
	if !same {
		return (in-k)/s + 1, 0
	}
	out = (in + s - 1) / s
	return out, max((out-1)*s+k-in, 0) / 2
}

// reference evaluates layer target of m the slow, obvious way.
func reference(t *testing.T, m *Model, x t4, target string) t4 {
	t.Helper()
	vals := map[string]t4{}
	wt := func(name string) []float64 {
		w, ok := m.weights[name]
		if !ok {
			return nil
		}
		out := make([]float64, len(w.data))
		for i, v := range w.data {
			out[i] = float64(v)
		}
		return out
	}
	for _, l := range m.layers {
		c := l.Config
		var in t4
		if len(l.inputs) > 0 {
			in = vals[l.inputs[0]]
		}
		var y t4
		switch l.ClassName {
		case "InputLayer":
			y = x
		case "ZeroPadding2D":
			var p [2][2]int
			if err := json.Unmarshal(c.Padding, &p); err != nil {
				t.Fatal(err)
			}
			y = newT4(in.n, in.h+p[0][0]+p[0][1], in.w+p[1][0]+p[1][1], in.c)
			for b := range in.n {
				for i := range in.h {
					for j := range in.w {
						for ch := range in.c {
							y.d[((b*y.h+i+p[0][0])*y.w+j+p[1][0])*y.c+ch] = in.at(b, i, j, ch)
						}
					}
				}
			}
		case "Conv2D", "DepthwiseConv2D", "MaxPooling2D", "AveragePooling2D":
			var mode string
			json.Unmarshal(c.Padding, &mode)
			k, s := c.KernelSize, c.Strides
			if k == nil {
				k = c.PoolSize
			}
			if s == nil {
				s = k
			}
			oh, pt := refPads(in.h, k[0], s[0], mode == "same")
			ow, pl := refPads(in.w, k[1], s[1], mode == "same")
			oc := in.c
			if l.ClassName == "Conv2D" {
				oc = c.Filters
			}
			y = newT4(in.n, oh, ow, oc)
			kern := wt(l.Name + "/kernel")
			if l.ClassName == "DepthwiseConv2D" {
				kern = wt(l.Name + "/depthwise_kernel")
			}
			bias := wt(l.Name + "/bias")
			for b := range in.n {
				for oy := range oh {
					for ox := range ow {
						for o := range oc {
							acc, cnt := 0.0, 0
							if l.ClassName == "MaxPooling2D" {
								acc = math.Inf(-1)
							}
							for ky := range k[0] {
								for kx := range k[1] {
									iy, ix := oy*s[0]-pt+ky, ox*s[1]-pl+kx
									if iy < 0 || iy >= in.h || ix < 0 || ix >= in.w {
										continue
									}
									cnt++
									switch l.ClassName {
									case "Conv2D":
										for ci := range in.c {
											acc += in.at(b, iy, ix, ci) * kern[((ky*k[1]+kx)*in.c+ci)*oc+o]
										}
									case "DepthwiseConv2D":
										acc += in.at(b, iy, ix, o) * kern[(ky*k[1]+kx)*in.c+o]
									case "MaxPooling2D":
										acc = math.Max(acc, in.at(b, iy, ix, o))
									case "AveragePooling2D":
										acc += in.at(b, iy, ix, o)
									}
								}
							}
							if l.ClassName == "AveragePooling2D" {
								acc /= float64(cnt)
							}
							if bias != nil {
								acc += bias[o]
							}
							if c.Activation == "relu" {
								acc = math.Max(acc, 0)
							}
							y.d[((b*oh+oy)*ow+ox)*oc+o] = acc
						}
					}
				}
			}
		case "BatchNormalization":
			y = newT4(in.n, in.h, in.w, in.c)
			gamma, beta := wt(l.Name+"/gamma"), wt(l.Name+"/beta")
			mean, variance := wt(l.Name+"/moving_mean"), wt(l.Name+"/moving_variance")
			for i, v := range in.d {
				ch := i % in.c
				g := 1.0
				if gamma != nil {
					g = gamma[ch]
				}
				y.d[i] = (v-mean[ch])/math.Sqrt(variance[ch]+c.Epsilon)*g + beta[ch]
			}
		case "ReLU", "Activation":
			y = newT4(in.n, in.h, in.w, in.c)
			if c.Activation == "linear" {
				copy(y.d, in.d)
				break
			}
			for i, v := range in.d {
				v = math.Max(v, 0)
				if c.MaxValue != nil {
					v = math.Min(v, *c.MaxValue)
				}
				y.d[i] = v
			}
		case "Add":
			y = newT4(in.n, in.h, in.w, in.c)
			for _, name := range l.inputs {
				for i, v := range vals[name].d {
					y.d[i] += v
				}
			}
		case "Concatenate":
			total := 0
			for _, name := range l.inputs {
				total += vals[name].c
			}
			y = newT4(in.n, in.h, in.w, total)
			for p := range in.n * in.h * in.w {
				off := 0
				for _, name := range l.inputs {
					v := vals[name]
					copy(y.d[p*total+off:], v.d[p*v.c:(p+1)*v.c])
					off += v.c
				}
			}
		default:
			t.Fatalf("reference: no %s", l.ClassName)
		}
		vals[l.Name] = y
		if l.Name == target {
			return y
		}
	}
	t.Fatalf("reference: no layer %s", target)
	return t4{}
}

// closeTo reports the largest |got − want| relative to the largest |want|.
func relErr(got []float32, want []float64) float64 {
	var diff, scale float64
	for i := range want {
		diff = math.Max(diff, math.Abs(float64(got[i])-want[i]))
		scale = math.Max(scale, math.Abs(want[i]))
	}
	return diff / math.Max(scale, 1e-30)
}

func TestForwardMatchesReference(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	layers, weights := synthGraph()
	writeSynth(t, dir, layers, weights, rng, nil)
	m, err := ReadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.InputSize != 224 {
		t.Errorf("InputSize %d, want 224", m.InputSize)
	}
	for _, size := range []int{13, 16} {
		const n = 3
		x := make([]float32, n*size*size*3)
		xr := newT4(n, size, size, 3)
		for i := range x {
			x[i] = rng.Float32()
			xr.d[i] = float64(x[i])
		}
		for _, l := range layers[1:] {
			net, err := m.Compile(l.name, size)
			if err != nil {
				t.Fatalf("compile %s at %d: %v", l.name, size, err)
			}
			got := net.Forward(x, n)
			want := reference(t, m, xr, l.name)
			if net.OutH != want.h || net.OutW != want.w || net.OutC != want.c || len(got) != len(want.d) {
				t.Fatalf("%s at %d: shape %dx%dx%d, want %dx%dx%d", l.name, size, net.OutH, net.OutW, net.OutC, want.h, want.w, want.c)
			}
			if e := relErr(got, want.d); e > 1e-5 {
				t.Errorf("%s at %d px: relative error %.3g", l.name, size, e)
			}
			// Embed is the spatial mean of Forward.
			emb := net.Embed(x, n)
			hw := want.h * want.w
			mean := make([]float64, n*want.c)
			for i, v := range want.d {
				mean[i/(hw*want.c)*want.c+i%want.c] += v / float64(hw)
			}
			if e := relErr(emb, mean); e > 1e-5 {
				t.Errorf("%s at %d px: Embed relative error %.3g", l.name, size, e)
			}
		}
	}
	// Fusion must actually happen where it is legal: c1+bn1+r1 with the pad
	// is one op when r1 is the target.
	net, err := m.Compile("r1", 13)
	if err != nil {
		t.Fatal(err)
	}
	if len(net.ops) != 1 || net.ops[0].padB != 1 || net.ops[0].act != actReLUMax {
		t.Errorf("pad+conv+bn+relu6 compiled to %d ops (first %+v), want one fused conv", len(net.ops), *net.ops[0])
	}
}

func TestDequantisation(t *testing.T) {
	dir := t.TempDir()
	layers, weights := synthGraph()
	writeSynth(t, dir, layers, weights, rand.New(rand.NewPCG(3, 4)), nil)
	m, err := ReadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Read the raw bytes back and recompute the first weight, c1/kernel (uint8,
	// min −1, scale 2/255): every value must be −1 + q·2/255 exactly.
	raw, err := readShard(filepath.Join(dir, "group1-shard1of2.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	k := m.weights["c1/kernel"].data
	for i, v := range k {
		if want := float32(float64(raw[i])*(2.0/255) - 1); v != want {
			t.Fatalf("c1/kernel[%d] = %v, want %v", i, v, want)
		}
	}
	if len(m.WeightsSHA256) != 64 {
		t.Errorf("WeightsSHA256 %q", m.WeightsSHA256)
	}
}

func TestReadModelErrors(t *testing.T) {
	layers, weights := synthGraph()
	manifest := func(top map[string]any) map[string]any {
		return top["weightsManifest"].([]any)[0].(map[string]any)
	}
	firstSpec := func(top map[string]any) map[string]any {
		return manifest(top)["weights"].([]any)[0].(map[string]any)
	}
	cases := []struct {
		name string
		edit func(map[string]any)
		msg  string
	}{
		{"extra weight", func(top map[string]any) {
			m := manifest(top)
			m["weights"] = append(m["weights"].([]any), map[string]any{"name": "x/y", "shape": []int{5}, "dtype": "float32"})
		}, "needs bytes"},
		{"missing weight", func(top map[string]any) {
			m := manifest(top)
			m["weights"] = m["weights"].([]any)[1:]
		}, "shards hold"},
		{"float16", func(top map[string]any) {
			firstSpec(top)["quantization"].(map[string]any)["dtype"] = "float16"
		}, `quantization dtype "float16"`},
		{"int32 weight", func(top map[string]any) { firstSpec(top)["dtype"] = "int32" }, `dtype "int32"`},
		{"path escape", func(top map[string]any) {
			manifest(top)["paths"] = []string{"../group1-shard1of2", "group1-shard2of2"}
		}, "plain file name"},
		{"sequential", func(top map[string]any) {
			top["modelTopology"].(map[string]any)["model_config"].(map[string]any)["class_name"] = "Sequential"
		}, `"Sequential"`},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeSynth(t, dir, layers, weights, rand.New(rand.NewPCG(5, 6)), c.edit)
		_, err := ReadModel(dir)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: error %v, want one naming %s and containing %q", c.name, err, dir, c.msg)
		}
	}

	dir := t.TempDir()
	writeSynth(t, dir, layers, weights, rand.New(rand.NewPCG(5, 6)), nil)
	if err := os.WriteFile(filepath.Join(dir, "group1-shard2of2.min.js"), []byte(bundle(`"@@notbase64"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadModel(dir); err == nil || !strings.Contains(err.Error(), "group1-shard2of2.min.js: weight string is not valid base64") {
		t.Errorf("corrupt shard: %v", err)
	}
	os.Remove(filepath.Join(dir, "group1-shard2of2.min.js"))
	if _, err := ReadModel(dir); err == nil || !strings.Contains(err.Error(), "group1-shard2of2.min.js") {
		t.Errorf("missing shard: %v", err)
	}
}

func TestCompileErrors(t *testing.T) {
	dir := t.TempDir()
	layers, weights := synthGraph()
	layers = append(layers, synthLayer{"d", "Dense", map[string]any{"units": 3}, []string{"out"}})
	writeSynth(t, dir, layers, weights, rand.New(rand.NewPCG(7, 8)), nil)
	m, err := ReadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target string
		size   int
		msg    string
	}{
		{"d", 16, "is a Dense, which the Go forward pass does not implement"},
		{"nope", 16, `no layer named "nope"`},
		{"out", 1, "smaller than the 3x3 window"},
	} {
		if _, err := m.Compile(c.target, c.size); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Compile(%q, %d): %v, want %q", c.target, c.size, err, c.msg)
		}
	}
}

func TestPreprocessAlignCorners(t *testing.T) {
	// 2×2 → 3×3 with aligned corners: corners are the source pixels, the
	// centre is their mean, edge midpoints are pairwise means.
	got := Preprocess([]uint8{0, 255, 51, 102}, 1, 2, 2, 3)
	want := []float32{0, 0.5, 1, 0.1, 0.4, 0.7, 0.2, 0.3, 0.4}
	for i, w := range want {
		for ch := range 3 {
			if g := got[i*3+ch]; math.Abs(float64(g-w)) > 1e-6 {
				t.Errorf("pixel %d channel %d = %v, want %v", i, ch, g, w)
			}
		}
	}
}

// synthImages compiles the synthetic graph (weights drawn from seed) at 32 px and
// draws n random 7×9 grey images from the same stream.
func synthImages(t *testing.T, seed uint64, n int) (*Net, data.Images) {
	t.Helper()
	dir := t.TempDir()
	layers, weights := synthGraph()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	writeSynth(t, dir, layers, weights, rng, nil)
	m, err := ReadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	net, err := m.Compile("out", 32)
	if err != nil {
		t.Fatal(err)
	}
	im := data.Images{N: n, H: 7, W: 9, Pix: make([]uint8, n*63)}
	for i := range im.Pix {
		im.Pix[i] = uint8(rng.IntN(256))
	}
	return net, im
}

func TestEmbedImagesResumes(t *testing.T) {
	net, im := synthImages(t, 9, ChunkImages+5)
	partial := t.TempDir()
	last := 0
	full, err := net.EmbedImages(context.Background(), im, partial, func(done, total int) {
		if done <= last || total != im.N {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != im.N {
		t.Errorf("progress ended at %d of %d", last, im.N)
	}
	// The result is Embed of Preprocess, in batches of EmbedBatch.
	x := Preprocess(im.Pix[:EmbedBatch*63], EmbedBatch, 7, 9, 32)
	if e := relErr(full[:EmbedBatch*net.OutC], toF64(net.Embed(x, EmbedBatch))); e != 0 {
		t.Errorf("EmbedImages differs from Embed by %g", e)
	}
	if left, _ := os.ReadDir(partial); len(left) != 0 {
		t.Errorf("partial build left %v", left)
	}

	// Watch a build: once chunk 0 is committed, note where it went.
	var chunk0 string
	if _, err := net.EmbedImages(context.Background(), im, partial, func(done, total int) {
		if done > ChunkImages && chunk0 == "" {
			sub, _ := os.ReadDir(partial)
			if len(sub) == 1 {
				chunk0 = filepath.Join(partial, sub[0].Name(), "chunk-000000.f32")
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if chunk0 == "" {
		t.Fatal("no partial chunk seen during the build")
	}
	// An interrupted build left chunk 0 behind (here marked with 7s): the next
	// build takes it as is and computes only the rest.
	if err := os.MkdirAll(filepath.Dir(chunk0), 0o755); err != nil {
		t.Fatal(err)
	}
	sevens := make([]float32, ChunkImages*net.OutC)
	for i := range sevens {
		sevens[i] = 7
	}
	if err := writeChunk(chunk0, sevens); err != nil {
		t.Fatal(err)
	}
	resumed, err := net.EmbedImages(context.Background(), im, partial, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resumed[0] != 7 || resumed[len(sevens)-1] != 7 {
		t.Error("the committed chunk was recomputed instead of reused")
	}
	if e := relErr(resumed[len(sevens):], toF64(full[len(sevens):])); e != 0 {
		t.Errorf("resumed build differs after the reused chunk by %g", e)
	}
}

// TestEmbedImagesStops: a build whose context is cancelled during chunk 1 commits
// that chunk, computes nothing more and says why (the context's cause); the next
// build takes chunks 0 and 1, tells them as one count (its ETA is then the rate of
// what it computes) and gives the bits of an uninterrupted build.
func TestEmbedImagesStops(t *testing.T) {
	net, im := synthImages(t, 11, 2*ChunkImages+3)
	full, err := net.EmbedImages(context.Background(), im, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	partial := t.TempDir()
	signal := errors.New("SIGUSR1")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	last := 0
	_, err = net.EmbedImages(ctx, im, partial, func(done, total int) {
		last = done
		if done == ChunkImages+EmbedBatch {
			cancel(signal)
		}
	})
	if !errors.Is(err, signal) || !strings.Contains(err.Error(), fmt.Sprintf("after %d of %d images", 2*ChunkImages, im.N)) {
		t.Fatalf("cancelled build: %v, want the cause after %d images", err, 2*ChunkImages)
	}
	if last != 2*ChunkImages {
		t.Errorf("the cancelled build embedded %d images, want chunks 0 and 1, %d", last, 2*ChunkImages)
	}
	first := -1
	resumed, err := net.EmbedImages(context.Background(), im, partial, func(done, total int) {
		if first < 0 {
			first = done
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if first != 2*ChunkImages {
		t.Errorf("the next build's progress started at %d images, want chunks 0 and 1 (%d) taken from the cancelled one at once", first, 2*ChunkImages)
	}
	if e := relErr(resumed, toF64(full)); e != 0 {
		t.Errorf("a build continued after a stop differs from an uninterrupted one by %g", e)
	}
}

func toF64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
