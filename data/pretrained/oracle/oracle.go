// Package oracle runs the reference implementation the Go forward pass of
// package pretrained is checked and benchmarked against: TensorFlow.js 4.22.0
// with its wasm backend under node, on the same nsfwjs model files. It is for
// tests and benchmarks only; nothing in mct's runtime uses it.
//
// EnsureTFJS installs @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm from
// npm into a cache directory once (tfjs-node is avoided: it downloads a native
// library at install time). Check and Bench run the embedded oracle.js.
package oracle

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// TFJSVersion is the TensorFlow.js release used as the oracle.
const TFJSVersion = "4.22.0"

//go:embed oracle.js
var script []byte

const marker = ".mct-complete"

// EnsureTFJS returns an npm prefix under cacheDir holding TF.js and its wasm
// backend, installing them on first use into a temporary directory that is
// renamed into place when complete.
func EnsureTFJS(cacheDir string) (string, error) {
	dir := filepath.Join(cacheDir, "tfjs-"+TFJSVersion)
	if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
		return dir, nil
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s is not installed (the TF.js oracle needs Node.js and npm)", tool)
		}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tfjs-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", tmp,
		"@tensorflow/tfjs@"+TFJSVersion, "@tensorflow/tfjs-backend-wasm@"+TFJSVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install @tensorflow/tfjs@%s (is the npm registry reachable?): %v: %s", TFJSVersion, err, npmError(out))
	}
	if err := os.WriteFile(filepath.Join(tmp, marker), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, marker)); serr != nil {
			return "", err
		}
	}
	return dir, nil
}

func npmError(out []byte) string {
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "npm error") && !strings.Contains(l, "complete log") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	msg := strings.Join(keep, "; ")
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	return msg
}

// run writes the embedded script to dir and runs it with args.
func run(dir string, args ...string) ([]byte, error) {
	js := filepath.Join(dir, "oracle.js")
	if err := os.WriteFile(js, script, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", append([]string{js}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node oracle.js %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// Target is a layer and the input size to run the model at.
type Target struct {
	Layer string
	Size  int
}

// Result is TF.js's preprocessed input (NHWC, n×Size×Size×3) and the target
// layer's output (NHWC) for one Target.
type Result struct {
	Input, Output []float32
}

// Check runs the model in modelDir up to each target on n grey h×w images,
// preprocessed as nsfwjs does it, reading the weights once.
func Check(tfjs, modelDir string, targets []Target, grey []uint8, n, h, w int) ([]Result, error) {
	dir, err := os.MkdirTemp("", "mct-oracle-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	imgs := filepath.Join(dir, "images.u8")
	if err := os.WriteFile(imgs, grey, 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "out")
	if _, err := run(dir, tfjs, modelDir, targetList(targets), "check", imgs, out, fmt.Sprint(n), fmt.Sprint(h), fmt.Sprint(w)); err != nil {
		return nil, err
	}
	res := make([]Result, len(targets))
	for i := range targets {
		if res[i].Input, err = readFloats(fmt.Sprintf("%s.%d.input", out, i)); err != nil {
			return nil, err
		}
		if res[i].Output, err = readFloats(fmt.Sprintf("%s.%d.output", out, i)); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func targetList(ts []Target) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s@%d", t.Layer, t.Size)
	}
	return strings.Join(parts, ",")
}

// Timing is what Bench measured: the best wall time and the best process CPU
// time per image over three repetitions, and the wasm backend's thread count.
type Timing struct {
	MSPerImage    float64 `json:"ms_per_image"`
	CPUMSPerImage float64 `json:"cpu_ms_per_image"`
	Threads       int     `json:"threads"`
}

// Bench times TF.js on n random size×size images in one batch (best of three
// after a warm-up).
func Bench(tfjs, modelDir, layer string, size, n int) (Timing, error) {
	dir, err := os.MkdirTemp("", "mct-oracle-*")
	if err != nil {
		return Timing{}, err
	}
	defer os.RemoveAll(dir)
	out, err := run(dir, tfjs, modelDir, targetList([]Target{{layer, size}}), "bench", "-", "-", fmt.Sprint(n), "0", "0")
	if err != nil {
		return Timing{}, err
	}
	var r Timing
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		return Timing{}, fmt.Errorf("oracle bench output %q: %w", out, err)
	}
	return r, nil
}

func readFloats(path string) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a float32 array", path, len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
