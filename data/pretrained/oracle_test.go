package pretrained

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"mct/data"
	"mct/data/pretrained/oracle"
	"mct/internal/testenv"
)

// The oracle (package oracle): TensorFlow.js with its wasm backend, installed
// from npm into the cache on first use, runs the same nsfwjs models on the
// same images.

// fashionTest is Debian's dataset-fashion-mnist test images.
const fashionTest = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

// testCache is where tests keep npm downloads between runs: CacheDir, so
// $MCT_CACHE_DIR or the user's cache.
func testCache(t testing.TB) string {
	d, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// unavailable ends a test that needs npm or node and cannot have it: a
// failure under CI (where they must be there), a skip on a developer machine.
func unavailable(t testing.TB, err error) {
	t.Helper()
	testenv.Missing(t, "the oracle cannot run: %v", err)
}

// fashionImages returns the first n Fashion-MNIST test images (28×28).
func fashionImages(t testing.TB, n int) []uint8 {
	t.Helper()
	x, err := data.ReadIDX(fashionTest)
	if err != nil {
		t.Fatalf("%v (install Debian's dataset-fashion-mnist)", err)
	}
	if len(x.Dims) != 3 || x.Dims[0] < n || x.Dims[1] != 28 || x.Dims[2] != 28 {
		t.Fatalf("%s: dims %v, want at least %d images of 28×28", fashionTest, x.Dims, n)
	}
	return x.Data[:n*28*28]
}

// oracleModels fetches nsfwjs and tfjs (or ends the test as unavailable).
func oracleModels(t testing.TB) (pkg, tfjs string) {
	t.Helper()
	cache := testCache(t)
	pkg, err := EnsurePackage(cache)
	if err != nil {
		unavailable(t, err)
	}
	if tfjs, err = oracle.EnsureTFJS(cache); err != nil {
		unavailable(t, err)
	}
	return pkg, tfjs
}

func TestMatchesTFJS(t *testing.T) {
	pkg, tfjs := oracleModels(t)
	const n = 4
	grey := fashionImages(t, n)
	for _, c := range []struct {
		network string
		targets []oracle.Target
	}{
		// The view layers at 96 px; odd sizes take the other SAME-padding
		// branches, and out_relu covers the rest of MobileNetV2.
		{"mobilenet_v2", []oracle.Target{{Layer: "block_13_expand_relu", Size: 96}, {Layer: "out_relu", Size: 75}}},
		{"inception_v3", []oracle.Target{{Layer: "mixed7", Size: 96}, {Layer: "mixed7", Size: 75}}},
	} {
		m, err := ReadModel(filepath.Join(pkg, "dist", "models", Networks[c.network].Dir))
		if err != nil {
			t.Fatal(err)
		}
		results, err := oracle.Check(tfjs, m.Dir, c.targets, grey, n, 28, 28)
		if err != nil {
			t.Fatalf("%s: %v", c.network, err)
		}
		for i, tg := range c.targets {
			name := fmt.Sprintf("%s:%s@%d", c.network, tg.Layer, tg.Size)
			in, want := results[i].Input, results[i].Output
			net, err := m.Compile(tg.Layer, tg.Size)
			if err != nil {
				t.Fatal(err)
			}
			// Preprocessing: the same arithmetic as tf.image.resizeBilinear.
			pre := Preprocess(grey, n, 28, 28, tg.Size)
			var dpre float64
			for i := range in {
				dpre = math.Max(dpre, math.Abs(float64(pre[i]-in[i])))
			}
			if len(in) != len(pre) || dpre > 1e-6 {
				t.Errorf("%s: Preprocess differs from TF.js by %.3g", name, dpre)
			}
			// Forward pass on TF.js's own input, per image: max |Go − TF.js|
			// relative to the image's largest activation.
			got := net.Forward(in, n)
			if len(got) != len(want) {
				t.Fatalf("%s: %d outputs, TF.js has %d", name, len(got), len(want))
			}
			per := len(got) / n
			worst := 0.0
			for b := range n {
				worst = math.Max(worst, relErr(got[b*per:(b+1)*per], toF64(want[b*per:(b+1)*per])))
			}
			t.Logf("%s: output %dx%dx%d, max relative difference to TF.js %.2g", name, net.OutH, net.OutW, net.OutC, worst)
			if worst > 1e-4 || math.IsNaN(worst) {
				t.Errorf("%s: Go and TF.js differ by %.3g relative (limit 1e-4)", name, worst)
			}
			// The signal must be real: a network outputting zeros would match too.
			var sumsq float64
			for _, v := range want {
				sumsq += float64(v) * float64(v)
			}
			if sumsq == 0 || bytes.Equal(floatBytes(want[:per]), floatBytes(want[per:2*per])) {
				t.Errorf("%s: TF.js output is degenerate (all zero or identical across images)", name)
			}
			// The view family end to end (grey images in, pooled vectors
			// out) against the spatial mean of TF.js's output; once, since
			// the code path is the same for both networks.
			if c.network == "mobilenet_v2" && tg.Layer == DefaultLayers[c.network] {
				feats, err := family(c.network)(context.Background(), fmt.Sprintf("%s@%d", tg.Layer, tg.Size), data.Images{N: n, H: 28, W: 28, Pix: grey}, nil)
				if err != nil {
					t.Fatal(err)
				}
				hw := net.OutH * net.OutW
				mean := make([]float64, n*net.OutC)
				for i, v := range want {
					mean[i/(hw*net.OutC)*net.OutC+i%net.OutC] += float64(v) / float64(hw)
				}
				if feats.Dim != net.OutC {
					t.Errorf("%s: family dim %d, want %d", name, feats.Dim, net.OutC)
				}
				if e := relErr(feats.Data, mean); e > 1e-4 {
					t.Errorf("%s: view family differs from TF.js by %.3g relative", name, e)
				}
				if feats.Params["weights_sha256"] != m.WeightsSHA256 || feats.Params["layer"] != tg.Layer {
					t.Errorf("%s: provenance %v", name, feats.Params)
				}
			}
		}
	}
}

func floatBytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}
