package pretrained

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Model is a Keras functional model read from a TensorFlow.js layers-format
// directory as nsfwjs ships it: model.min.js (topology and weights manifest)
// and group1-shardNofM.min.js (base64 weight bytes). Weights are dequantised
// to float32 at load time. A Model is immutable; Compile it for a target
// layer and an input size to run it.
type Model struct {
	// Dir is the directory the model was read from.
	Dir string
	// InputSize is the square input resolution the network was trained at.
	InputSize int
	// WeightsSHA256 is the hex SHA-256 of the decoded weight bytes, all shards
	// concatenated in manifest order: it identifies the weights for provenance.
	WeightsSHA256 string

	layers  []*layerSpec
	byName  map[string]*layerSpec
	weights map[string]*tensor
}

// tensor is a dequantised weight with its Keras shape (row-major).
type tensor struct {
	shape []int
	data  []float32
}

type layerSpec struct {
	Name         string      `json:"name"`
	ClassName    string      `json:"class_name"`
	Config       layerConfig `json:"config"`
	InboundNodes [][][]any   `json:"inbound_nodes"`
	inputs       []string
}

// layerConfig is the union of the Keras config fields the supported layers use.
type layerConfig struct {
	BatchInputShape []*int          `json:"batch_input_shape"`
	Filters         int             `json:"filters"`
	KernelSize      []int           `json:"kernel_size"`
	Strides         []int           `json:"strides"`
	Padding         json.RawMessage `json:"padding"`
	DataFormat      string          `json:"data_format"`
	DilationRate    []int           `json:"dilation_rate"`
	Activation      string          `json:"activation"`
	UseBias         bool            `json:"use_bias"`
	DepthMultiplier int             `json:"depth_multiplier"`
	Axis            *int            `json:"axis"`
	Epsilon         float64         `json:"epsilon"`
	Center          *bool           `json:"center"`
	Scale           *bool           `json:"scale"`
	MaxValue        *float64        `json:"max_value"`
	NegativeSlope   float64         `json:"negative_slope"`
	Threshold       float64         `json:"threshold"`
	PoolSize        []int           `json:"pool_size"`
}

type modelFile struct {
	ModelTopology struct {
		ModelConfig struct {
			ClassName string `json:"class_name"`
			Config    struct {
				Layers      []*layerSpec `json:"layers"`
				InputLayers [][]any      `json:"input_layers"`
			} `json:"config"`
		} `json:"model_config"`
	} `json:"modelTopology"`
	WeightsManifest []struct {
		Paths   []string `json:"paths"`
		Weights []struct {
			Name         string `json:"name"`
			Shape        []int  `json:"shape"`
			Dtype        string `json:"dtype"`
			Quantization *struct {
				Min   *float64 `json:"min"`
				Scale *float64 `json:"scale"`
				Dtype string   `json:"dtype"`
			} `json:"quantization"`
		} `json:"weights"`
	} `json:"weightsManifest"`
}

// ReadModel reads a TF.js layers model from dir (a directory holding
// model.min.js and the shard files its manifest names). Every weight's size is
// checked against the manifest; anything the reader does not understand is an
// error naming the file and field.
func ReadModel(dir string) (*Model, error) {
	topoPath := filepath.Join(dir, "model.min.js")
	src, err := os.ReadFile(topoPath)
	if err != nil {
		return nil, fmt.Errorf("read pretrained model: %w", err)
	}
	lit, err := exportedLiteral(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", topoPath, err)
	}
	// Round-trip through encoding/json so the typed structs below do the
	// field checking; the literal holds only JSON-representable values.
	js, err := json.Marshal(lit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", topoPath, err)
	}
	var mf modelFile
	if err := json.Unmarshal(js, &mf); err != nil {
		return nil, fmt.Errorf("%s: topology does not have the TF.js layers-model shape: %w", topoPath, err)
	}
	if cn := mf.ModelTopology.ModelConfig.ClassName; cn != "Model" && cn != "Functional" {
		return nil, fmt.Errorf("%s: modelTopology.model_config.class_name is %q, want a functional \"Model\"", topoPath, cn)
	}
	m := &Model{Dir: dir, byName: map[string]*layerSpec{}, weights: map[string]*tensor{}}
	m.layers = mf.ModelTopology.ModelConfig.Config.Layers
	if len(m.layers) == 0 {
		return nil, fmt.Errorf("%s: modelTopology.model_config.config.layers is empty", topoPath)
	}
	for _, l := range m.layers {
		if _, dup := m.byName[l.Name]; dup {
			return nil, fmt.Errorf("%s: layer name %q appears twice", topoPath, l.Name)
		}
		m.byName[l.Name] = l
		if len(l.InboundNodes) > 1 {
			return nil, fmt.Errorf("%s: layer %q is called %d times; shared layers are not supported", topoPath, l.Name, len(l.InboundNodes))
		}
		for _, node := range l.InboundNodes {
			for _, in := range node {
				name, ok := in[0].(string)
				if !ok || len(in) < 3 || in[1] != 0.0 || in[2] != 0.0 {
					return nil, fmt.Errorf("%s: layer %q inbound_nodes entry %v is not [name, 0, 0, {}]", topoPath, l.Name, in)
				}
				if _, ok := m.byName[name]; !ok {
					return nil, fmt.Errorf("%s: layer %q takes input from %q, which is not defined before it", topoPath, l.Name, name)
				}
				l.inputs = append(l.inputs, name)
			}
		}
		if l.ClassName == "InputLayer" {
			s := l.Config.BatchInputShape
			if len(s) != 4 || s[1] == nil || s[2] == nil || s[3] == nil || *s[1] != *s[2] || *s[3] != 3 {
				return nil, fmt.Errorf("%s: input layer %q batch_input_shape must be [null, S, S, 3]", topoPath, l.Name)
			}
			if m.InputSize != 0 {
				return nil, fmt.Errorf("%s: more than one input layer; only single-input models are supported", topoPath)
			}
			m.InputSize = *s[1]
		}
	}
	if m.InputSize == 0 {
		return nil, fmt.Errorf("%s: no InputLayer in the topology", topoPath)
	}

	h := sha256.New()
	for gi, group := range mf.WeightsManifest {
		var buf []byte
		for _, p := range group.Paths {
			if p == "" || strings.ContainsAny(p, `/\`) || p == "." || p == ".." {
				return nil, fmt.Errorf("%s: weightsManifest[%d].paths entry %q must be a plain file name in the model directory", topoPath, gi, p)
			}
			shardPath := filepath.Join(dir, p+".min.js")
			b, err := readShard(shardPath)
			if err != nil {
				return nil, err
			}
			buf = append(buf, b...)
		}
		h.Write(buf)
		off := 0
		for _, w := range group.Weights {
			n := 1
			for _, d := range w.Shape {
				if d <= 0 {
					return nil, fmt.Errorf("%s: weight %q has shape %v; dimensions must be positive", topoPath, w.Name, w.Shape)
				}
				n *= d
			}
			if w.Dtype != "float32" {
				return nil, fmt.Errorf("%s: weight %q has dtype %q; only float32 weights are supported", topoPath, w.Name, w.Dtype)
			}
			t := &tensor{shape: w.Shape, data: make([]float32, n)}
			q := w.Quantization
			switch {
			case q == nil:
				if off+4*n > len(buf) {
					return nil, fmt.Errorf("%s: weight %q needs bytes %d..%d but the shards of group %d hold %d bytes", topoPath, w.Name, off, off+4*n, gi, len(buf))
				}
				for i := range t.data {
					b := buf[off+4*i:]
					t.data[i] = math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
				}
				off += 4 * n
			case q.Min == nil || q.Scale == nil:
				return nil, fmt.Errorf("%s: weight %q quantization lacks min or scale (only affine uint8/uint16 quantization is supported)", topoPath, w.Name)
			case q.Dtype == "uint8" || q.Dtype == "uint16":
				size := 1
				if q.Dtype == "uint16" {
					size = 2
				}
				if off+size*n > len(buf) {
					return nil, fmt.Errorf("%s: weight %q needs bytes %d..%d but the shards of group %d hold %d bytes", topoPath, w.Name, off, off+size*n, gi, len(buf))
				}
				// TF.js dequantises as q*scale + min in float64 and stores
				// float32; doing the same keeps the weights bit-identical.
				mn, sc := *q.Min, *q.Scale
				for i := range t.data {
					var v uint32
					if size == 1 {
						v = uint32(buf[off+i])
					} else {
						v = uint32(buf[off+2*i]) | uint32(buf[off+2*i+1])<<8
					}
					t.data[i] = float32(float64(v)*sc + mn)
				}
				off += size * n
			default:
				return nil, fmt.Errorf("%s: weight %q has quantization dtype %q; only uint8 and uint16 are supported", topoPath, w.Name, q.Dtype)
			}
			if _, dup := m.weights[w.Name]; dup {
				return nil, fmt.Errorf("%s: weight %q listed twice in the manifest", topoPath, w.Name)
			}
			m.weights[w.Name] = t
		}
		if off != len(buf) {
			return nil, fmt.Errorf("%s: weightsManifest[%d] describes %d bytes but its shards hold %d", topoPath, gi, off, len(buf))
		}
	}
	m.WeightsSHA256 = hex.EncodeToString(h.Sum(nil))
	return m, nil
}

// readShard decodes one group1-shardNofM.min.js bundle into its weight bytes.
func readShard(path string) ([]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read weight shard: %w", err)
	}
	lit, err := exportedLiteral(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := lit.(string)
	if !ok {
		return nil, fmt.Errorf("%s: exports is a %T, want a base64 string", path, lit)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: weight string is not valid base64: %w", path, err)
	}
	return b, nil
}

// Layers returns the names of the model's layers in topological order, as
// they appear in the topology.
func (m *Model) Layers() []string {
	names := make([]string, len(m.layers))
	for i, l := range m.layers {
		names[i] = l.Name
	}
	return names
}

// weight returns a layer's weight tensor, checking its shape.
func (m *Model) weight(layer, name string, shape ...int) ([]float32, error) {
	key := layer + "/" + name
	t, ok := m.weights[key]
	if !ok {
		return nil, fmt.Errorf("%s: weight %q missing from the manifest", m.Dir, key)
	}
	if len(t.shape) != len(shape) {
		return nil, fmt.Errorf("%s: weight %q has shape %v, want %v", m.Dir, key, t.shape, shape)
	}
	for i := range shape {
		if shape[i] != t.shape[i] {
			return nil, fmt.Errorf("%s: weight %q has shape %v, want %v", m.Dir, key, t.shape, shape)
		}
	}
	return t.data, nil
}
