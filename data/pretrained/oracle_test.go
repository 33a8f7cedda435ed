package pretrained

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"mct/data"
)

// The oracle: TensorFlow.js 4.22.0 with its wasm backend, installed from npm
// into the cache on first use, runs the same nsfwjs models on the same images
// (testdata/oracle.js). tfjs-node is avoided: it downloads a native library.

const (
	tfjsVersion = "4.22.0"
	// fashionTest is Debian's dataset-fashion-mnist test images.
	fashionTest = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
)

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
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and the oracle cannot run: %v", err)
	}
	t.Skipf("oracle unavailable (set CI=true to make this fail): %v", err)
}

// ensureTFJS installs @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm into
// cache/tfjs-VERSION once (into a temporary directory, then renamed) and
// returns that npm prefix.
func ensureTFJS(t testing.TB, cache string) string {
	t.Helper()
	dir := filepath.Join(cache, "tfjs-"+tfjsVersion)
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err == nil {
		return dir
	}
	if _, err := exec.LookPath("npm"); err != nil {
		unavailable(t, fmt.Errorf("npm not installed: %w", err))
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(cache, ".tfjs-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", tmp,
		"@tensorflow/tfjs@"+tfjsVersion, "@tensorflow/tfjs-backend-wasm@"+tfjsVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		unavailable(t, fmt.Errorf("npm install tfjs %s: %v: %s", tfjsVersion, err, lastLine(string(out))))
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, completeMarker)); serr != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fashionImages returns the first n Fashion-MNIST test images (28×28).
func fashionImages(t testing.TB, n int) []uint8 {
	t.Helper()
	f, err := os.Open(fashionTest)
	if err != nil {
		t.Fatalf("%v (install Debian's dataset-fashion-mnist)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16+n*28*28)
	if _, err := io.ReadFull(zr, b); err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(b) != 0x803 || binary.BigEndian.Uint32(b[8:]) != 28 {
		t.Fatalf("%s: not a 28×28 IDX image file", fashionTest)
	}
	return b[16:]
}

func readFloats(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// oracleModels fetches nsfwjs and tfjs (or ends the test as unavailable).
func oracleModels(t testing.TB) (pkg, tfjs string) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		unavailable(t, fmt.Errorf("node not installed: %w", err))
	}
	cache := testCache(t)
	pkg, err := EnsurePackage(cache)
	if err != nil {
		unavailable(t, err)
	}
	return pkg, ensureTFJS(t, cache)
}

func TestMatchesTFJS(t *testing.T) {
	pkg, tfjs := oracleModels(t)
	const n = 4
	grey := fashionImages(t, n)
	dir := t.TempDir()
	imgs := filepath.Join(dir, "images.u8")
	if err := os.WriteFile(imgs, grey, 0o644); err != nil {
		t.Fatal(err)
	}
	models := map[string]*Model{}
	for _, c := range []struct {
		network, layer string
		size           int
	}{
		{"mobilenet_v2", "block_13_expand_relu", 96},
		{"inception_v3", "mixed7", 96},
		// Odd sizes take the other SAME-padding branches; out_relu covers the
		// rest of MobileNetV2.
		{"mobilenet_v2", "out_relu", 75},
		{"inception_v3", "mixed7", 75},
	} {
		name := fmt.Sprintf("%s:%s@%d", c.network, c.layer, c.size)
		m := models[c.network]
		if m == nil {
			var err error
			if m, err = ReadModel(filepath.Join(pkg, "dist", "models", Networks[c.network].Dir)); err != nil {
				t.Fatal(err)
			}
			models[c.network] = m
		}
		net, err := m.Compile(c.layer, c.size)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, c.network+c.layer)
		cmd := exec.Command("node", filepath.Join("testdata", "oracle.js"), tfjs, m.Dir, c.layer,
			fmt.Sprint(c.size), "check", imgs, out, fmt.Sprint(n), "28", "28")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: oracle failed: %v\n%s", name, err, b)
		}
		// Preprocessing: the same arithmetic as tf.image.resizeBilinear.
		in := readFloats(t, out+".input")
		pre := Preprocess(grey, n, 28, 28, c.size)
		var dpre float64
		for i := range in {
			dpre = math.Max(dpre, math.Abs(float64(pre[i]-in[i])))
		}
		if dpre > 1e-6 {
			t.Errorf("%s: Preprocess differs from TF.js by %.3g", name, dpre)
		}
		// Forward pass on TF.js's own input, per image: max |Go − TF.js|
		// relative to the image's largest activation.
		want := readFloats(t, out+".output")
		got := net.Forward(in, n)
		if len(got) != len(want) {
			t.Fatalf("%s: %d outputs, TF.js has %d", name, len(got), len(want))
		}
		per := len(got) / n
		worst := 0.0
		for b := range n {
			w64 := make([]float64, per)
			for i, v := range want[b*per : (b+1)*per] {
				w64[i] = float64(v)
			}
			worst = math.Max(worst, relErr(got[b*per:(b+1)*per], w64))
		}
		t.Logf("%s: output %dx%dx%d, max relative difference to TF.js %.2g", name, net.OutH, net.OutW, net.OutC, worst)
		if worst > 1e-4 || math.IsNaN(worst) {
			t.Errorf("%s: Go and TF.js differ by %.3g relative (limit 1e-4)", name, worst)
		}
		// The view family end to end (grey images in, pooled vectors out)
		// against the spatial mean of TF.js's output.
		if c.layer == DefaultLayers[c.network] {
			feats, err := family(c.network)(fmt.Sprintf("%s@%d", c.layer, c.size), data.Images{N: n, H: 28, W: 28, Pix: grey}, nil)
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
			if feats.Params["weights_sha256"] != m.WeightsSHA256 || feats.Params["layer"] != c.layer {
				t.Errorf("%s: provenance %v", name, feats.Params)
			}
		}
		// The signal must be real: a network outputting zeros would match too.
		var sumsq float64
		for _, v := range want {
			sumsq += float64(v) * float64(v)
		}
		if sumsq == 0 || bytes.Equal(floatBytes(want[:per]), floatBytes(want[per:2*per])) {
			t.Errorf("%s: TF.js output is degenerate (all zero or identical across images)", name)
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
