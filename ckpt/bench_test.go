package ckpt

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// probeState is the state of one view's default probe (the reference FCNN
// on 768-dimensional features, 10 classes): weights and both Adam moments,
// about 2.9 M parameters each, 35 MB in all. Each opens with an odd-length
// header, as nn's SaveState output does (magic, version, fingerprint).
func probeState() map[string][]byte {
	rng := rand.New(rand.NewPCG(11, 12))
	p := 768*1024 + 2048*1024 + 3072*10
	head := []byte("MCTPROBE\x01\x00\x00\x00fcnn in=768 classes=10 ...")
	return map[string][]byte{
		"weights": append(slices.Clone(head), floatBytes(rng, p)...),
		"adam.m":  append(slices.Clone(head), floatBytes(rng, p)...),
		"adam.v":  append(slices.Clone(head), floatBytes(rng, p)...),
	}
}

func stateBytes(s map[string][]byte) int64 {
	var n int64
	for _, b := range s {
		n += int64(len(b))
	}
	return n
}

// BenchmarkSave measures a rank's checkpoint write, fsyncs included, and
// reports the compressed size as a fraction of the state.
func BenchmarkSave(b *testing.B) {
	dir := b.TempDir()
	sec := probeState()
	b.SetBytes(stateBytes(sec))
	for i := 0; b.Loop(); i++ {
		if err := Save(dir, header(0, 1, 1, int64(i%4)), sec); err != nil {
			b.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "ckpt", "step-0", "rank-0.mct"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size())/float64(stateBytes(sec)), "size/state")
}

// BenchmarkRead measures loading and verifying the same checkpoint.
func BenchmarkRead(b *testing.B) {
	sec := probeState()
	var buf bytes.Buffer
	if err := encode(&buf, header(0, 1, 1, 0), sec); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "rank-0.mct")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(stateBytes(sec))
	for b.Loop() {
		if _, _, err := Read(path); err != nil {
			b.Fatal(err)
		}
	}
}
