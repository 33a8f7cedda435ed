package ckpt

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"mct/internal/testenv"
)

// specials holds values whose bits a careless encoder would change.
var specials = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1.5, math.SmallestNonzeroFloat32, math.MaxFloat32,
	float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), 3.1415927,
	-2.5e-38, 1e30, 0.1, -0.2, 65504,
}

func probeTensors() []Tensor {
	bias := make([]float32, 5)
	for i := range bias {
		bias[i] = float32(i) * 0.25
	}
	return []Tensor{
		{Name: "layer0.weight", Shape: []int{3, 5}, Data: specials},
		{Name: "layer0.bias", Shape: []int{5}, Data: bias},
		{Name: "temperature", Shape: nil, Data: []float32{0.7}},
		{Name: "empty", Shape: []int{0, 4}, Data: nil},
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestSafetensorsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "probe.safetensors")
	in := probeTensors()
	meta := map[string]string{"format": "pt", "view": "hog"}
	if err := WriteSafetensors(path, in, meta); err != nil {
		t.Fatal(err)
	}
	out, gotMeta, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotMeta, meta) {
		t.Errorf("metadata %v, want %v", gotMeta, meta)
	}
	if len(out) != len(in) {
		t.Fatalf("%d tensors, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].Name != in[i].Name || len(out[i].Shape) != len(in[i].Shape) || !sameBits(out[i].Data, in[i].Data) {
			t.Errorf("tensor %d: got %s %v, want %s %v", i, out[i].Name, out[i].Shape, in[i].Name, in[i].Shape)
		}
	}
	data, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(data); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8: data would be misaligned", n)
	}
}

func TestWriteSafetensorsRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	cases := map[string][]Tensor{
		"shape's product":   {{Name: "a", Shape: []int{2, 2}, Data: make([]float32, 3)}},
		"appears twice":     {{Name: "a", Data: []float32{1}}, {Name: "a", Data: []float32{2}}},
		"reserved":          {{Name: metadataKey, Data: []float32{1}}},
		"reserved or empty": {{Name: "", Data: []float32{1}}},
	}
	for want, ts := range cases {
		if err := WriteSafetensors(path, ts, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a rejected export left a file behind")
	}
}

func TestReadSafetensorsRejects(t *testing.T) {
	build := func(header string, data int) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		b = append(b, header...)
		return append(b, make([]byte, data)...)
	}
	cases := map[string][]byte{
		"truncated":         {1, 2, 3},
		"does not fit":      binary.LittleEndian.AppendUint64(nil, 1<<40),
		"dtype":             build(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, 4),
		"without gaps":      build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
		"data bytes follow": build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8),
		"shape [3] but 4":   build(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}`, 4),
		"header":            build(`{"a":`, 0),
		`header entry "a"`:  build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4),
		"overlap":           build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
	}
	for want, data := range cases {
		_, _, err := parseSafetensors(data)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
}

// The oracle: PyTorch reads what Go wrote, and Go reads what a Python writer
// of the format wrote, bit for bit. Debian has no python3-safetensors, so the
// script parses the format itself with json, struct and torch.frombuffer,
// following the specification.
const safetensorsOracle = `
import json, struct, sys, torch

def read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0, "header not padded to 8"
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", e
        b, end = e["data_offsets"]
        if end > b:
            t = torch.frombuffer(bytearray(body[b:end]), dtype=torch.float32).reshape(e["shape"])
        else:
            t = torch.empty(e["shape"], dtype=torch.float32)
        out[name] = {"shape": list(t.shape), "bits": [v & 0xffffffff for v in t.reshape(-1).view(torch.int32).tolist()]}
    return out, meta

def write(path):
    torch.manual_seed(0)
    tensors = {
        "fc.weight": torch.randn(4, 3),
        "fc.bias": torch.linspace(-1, 1, 4),
        "scale": torch.tensor(2.5),
    }
    header, blobs, off = {"__metadata__": {"writer": "python"}}, [], 0
    for name in sorted(tensors, reverse=True):  # data order differs from key order
        raw = tensors[name].contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return {k: {"shape": list(v.shape), "bits": [x & 0xffffffff for x in v.reshape(-1).view(torch.int32).tolist()]} for k, v in tensors.items()}

got, meta = read(sys.argv[1])
expect = write(sys.argv[2])
print(json.dumps({"read": got, "meta": meta, "wrote": expect}))
`

func TestSafetensorsAgainstPyTorch(t *testing.T) {
	const py = testenv.Python
	testenv.Torch(t, py)
	dir := t.TempDir()
	goFile, pyFile := filepath.Join(dir, "go.safetensors"), filepath.Join(dir, "py.safetensors")
	in := probeTensors()
	if err := WriteSafetensors(goFile, in, map[string]string{"view": "hog"}); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "oracle.py")
	if err := os.WriteFile(script, []byte(safetensorsOracle), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, script, goFile, pyFile).Output()
	if err != nil {
		t.Fatalf("python oracle: %v\n%s", err, out)
	}
	type entry struct {
		Shape []int    `json:"shape"`
		Bits  []uint32 `json:"bits"`
	}
	var res struct {
		Read  map[string]entry  `json:"read"`
		Meta  map[string]string `json:"meta"`
		Wrote map[string]entry  `json:"wrote"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("oracle output: %v\n%s", err, out)
	}
	if res.Meta["view"] != "hog" {
		t.Errorf("PyTorch saw metadata %v", res.Meta)
	}
	bits := func(v []float32) []uint32 {
		b := make([]uint32, len(v))
		for i := range v {
			b[i] = math.Float32bits(v[i])
		}
		return b
	}
	for _, tn := range in {
		e, ok := res.Read[tn.Name]
		if !ok {
			t.Errorf("PyTorch did not find %s", tn.Name)
			continue
		}
		if !slices.Equal(e.Shape, tn.Shape) || !slices.Equal(e.Bits, bits(tn.Data)) {
			t.Errorf("%s: PyTorch read shape %v bits %x, Go wrote %v %x", tn.Name, e.Shape, e.Bits, tn.Shape, bits(tn.Data))
		}
	}

	got, meta, err := ReadSafetensors(pyFile)
	if err != nil {
		t.Fatal(err)
	}
	if meta["writer"] != "python" {
		t.Errorf("metadata %v", meta)
	}
	if len(got) != len(res.Wrote) {
		t.Fatalf("Go read %d tensors, Python wrote %d", len(got), len(res.Wrote))
	}
	for _, tn := range got {
		e := res.Wrote[tn.Name]
		if !slices.Equal(tn.Shape, e.Shape) || !slices.Equal(bits(tn.Data), e.Bits) {
			t.Errorf("%s: Go read %v %x, Python wrote %v %x", tn.Name, tn.Shape, bits(tn.Data), e.Shape, e.Bits)
		}
	}
}

// FuzzParseSafetensors: no input may panic the reader, and whatever it
// accepts must survive a write and a read unchanged.
func FuzzParseSafetensors(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.safetensors")
	if err := WriteSafetensors(path, probeTensors(), map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, meta, err := parseSafetensors(data)
		if err != nil {
			return
		}
		out := filepath.Join(t.TempDir(), "x.safetensors")
		if err := WriteSafetensors(out, tensors, meta); err != nil {
			t.Fatalf("accepted tensors do not write back: %v", err)
		}
		again, meta2, err := ReadSafetensors(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != len(tensors) || len(meta2) != len(meta) {
			t.Fatal("write and read changed the file's content")
		}
		for i := range again {
			if again[i].Name != tensors[i].Name || !slices.Equal(again[i].Shape, tensors[i].Shape) || !sameBits(again[i].Data, tensors[i].Data) {
				t.Fatalf("tensor %q changed", tensors[i].Name)
			}
		}
	})
}
