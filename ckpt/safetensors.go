package ckpt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"mct/internal/atomicfile"
)

// Tensor is a named float32 array in row-major order, the unit of the
// safetensors export.
type Tensor struct {
	Name  string
	Shape []int // nil or empty for a scalar
	Data  []float32
}

// metadataKey is the reserved header entry for free-form string metadata.
const metadataKey = "__metadata__"

// maxSafetensorsHeader is the header size limit of the reference reader
// (100 MB); files beyond it would not load in PyTorch either.
const maxSafetensorsHeader = 100 << 20

// stEntry is one tensor's entry in a safetensors header.
type stEntry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes tensors to path in the safetensors format
// (huggingface.co/docs/safetensors), so PyTorch users can load a probe with
// safetensors.torch.load_file. The layout: an 8-byte little-endian header
// length, a JSON header mapping each name to dtype "F32", shape and
// data_offsets (relative to the end of the header), an optional
// "__metadata__" object of strings, then the little-endian data, tensors
// back to back in the order given. The header is padded with spaces to a
// multiple of 8 bytes so the data is aligned, as the reference writer does.
// metadata may be nil. The file is replaced atomically.
func WriteSafetensors(path string, tensors []Tensor, metadata map[string]string) error {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header[metadataKey] = metadata
	}
	var off int64
	for _, t := range tensors {
		if t.Name == "" || t.Name == metadataKey {
			return fmt.Errorf("write %s: tensor name %q is reserved or empty: name each tensor", path, t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("write %s: tensor name %q appears twice: names must be unique", path, t.Name)
		}
		n, err := elements(t.Shape)
		if err != nil || n != int64(len(t.Data)) {
			return fmt.Errorf("write %s: tensor %q has shape %v but %d values: the shape's product must equal the value count", path, t.Name, t.Shape, len(t.Data))
		}
		shape := append([]int{}, t.Shape...) // never null in JSON
		header[t.Name] = stEntry{Dtype: "F32", Shape: shape, DataOffsets: [2]int64{off, off + 4*n}}
		off += 4 * n
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if pad := (8 - len(hdr)%8) % 8; pad > 0 {
		hdr = append(hdr, bytes.Repeat([]byte{' '}, pad)...)
	}
	return atomicfile.Write(path, func(w *bufio.Writer) error {
		if _, err := w.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))); err != nil {
			return err
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		buf := make([]byte, 0, 1<<16)
		for _, t := range tensors {
			for i, v := range t.Data {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
				if len(buf) == cap(buf) || i == len(t.Data)-1 {
					if _, err := w.Write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
		}
		return nil
	})
}

// elements is the number of values a shape holds.
func elements(shape []int) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d", d)
		}
		if d > 0 && n > math.MaxInt64/4/int64(d) {
			return 0, errors.New("shape too large")
		}
		n *= int64(d)
	}
	return n, nil
}

// ReadSafetensors reads a safetensors file of F32 tensors, returned in the
// order of their data, and its metadata (nil when absent). It checks what
// the reference reader checks: the header length, that the offsets tile the
// data exactly, and that each tensor's size matches its shape.
func ReadSafetensors(path string) ([]Tensor, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read safetensors: %w", err)
	}
	tensors, meta, err := parseSafetensors(data)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	return tensors, meta, nil
}

func parseSafetensors(data []byte) ([]Tensor, map[string]string, error) {
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("truncated: %d bytes, the header length alone takes 8", len(data))
	}
	hlen := binary.LittleEndian.Uint64(data)
	if hlen > maxSafetensorsHeader || hlen > uint64(len(data)-8) {
		return nil, nil, fmt.Errorf("header length %d does not fit a %d-byte file", hlen, len(data))
	}
	// The specification requires the header to open with '{' (no leading
	// whitespace), so that is what readers may rely on.
	if hlen == 0 || data[8] != '{' {
		return nil, nil, errors.New("header does not begin with '{'")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+hlen], &raw); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	var meta map[string]string
	if m, ok := raw[metadataKey]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, fmt.Errorf("header field %s: %w", metadataKey, err)
		}
		delete(raw, metadataKey)
	}
	type named struct {
		name string
		stEntry
	}
	entries := make([]named, 0, len(raw))
	for name, msg := range raw {
		if name == "" {
			return nil, nil, errors.New("a tensor has an empty name")
		}
		var e stEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("header entry %q: %w", name, err)
		}
		if e.Dtype != "F32" {
			return nil, nil, fmt.Errorf("tensor %q has dtype %q: this reader takes F32 only", name, e.Dtype)
		}
		entries = append(entries, named{name, e})
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].DataOffsets, entries[j].DataOffsets
		return a[0] < b[0] || a[0] == b[0] && a[1] < b[1]
	})
	body := data[8+hlen:]
	tensors := make([]Tensor, len(entries))
	var off int64
	for i, e := range entries {
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin != off || end < begin || end > int64(len(body)) {
			return nil, nil, fmt.Errorf("tensor %q has data_offsets [%d, %d]: tensors must tile the %d data bytes without gaps or overlap", e.name, begin, end, len(body))
		}
		n, err := elements(e.Shape)
		if err != nil || 4*n != end-begin {
			return nil, nil, fmt.Errorf("tensor %q has shape %v but %d data bytes", e.name, e.Shape, end-begin)
		}
		vals := make([]float32, n)
		for k := range vals {
			vals[k] = math.Float32frombits(binary.LittleEndian.Uint32(body[begin+4*int64(k):]))
		}
		tensors[i] = Tensor{Name: e.name, Shape: e.Shape, Data: vals}
		off = end
	}
	if off != int64(len(body)) {
		return nil, nil, fmt.Errorf("%d data bytes follow the last tensor: the file is corrupt", int64(len(body))-off)
	}
	return tensors, meta, nil
}
