package nn

import (
	"slices"
	"strings"
	"testing"
)

// TestAdoptNoCopy: the CPU backend's Adopt wraps the caller's slice itself, so the
// features a rank keeps "resident" on the CPU are not a second copy, and GatherRows
// reads them from there.
func TestAdoptNoCopy(t *testing.T) {
	b := NewCPU()
	host := []float32{1, 2, 3, 4, 5, 6}
	src := Adopter(b).Adopt(host)
	host[4] = -5 // a change after Adopt is seen: no copy was made
	idx, dst := indexBuf(b, []uint32{2, 0}), b.Alloc(4)
	b.GatherRows(dst, src, 2, idx, 2)
	got := make([]float32, 4)
	b.Download(got, dst)
	if want := []float32{-5, 6, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("gathered %v, want %v", got, want)
	}
}

// TestGatherRowsBadIndex: an index past the source's rows panics in the caller, before
// anything is written.
func TestGatherRowsBadIndex(t *testing.T) {
	b := NewCPU()
	src, idx, dst := b.Alloc(6), indexBuf(b, []uint32{1, 3}), b.Alloc(4) // rows 0..2 of 2 columns
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "GatherRows index 3 outside a source of 3 rows of 2") {
			t.Errorf("panic %q, want the bad index named", msg)
		}
	}()
	b.GatherRows(dst, src, 2, idx, 2)
}

// TestUploadedBytes counts Upload's bytes.
func TestUploadedBytes(t *testing.T) {
	b := NewCPU()
	x := b.Alloc(10)
	b.Upload(x, make([]float32, 10))
	b.Upload(b.View(x, 2, 3), make([]float32, 3))
	if got := b.UploadedBytes(); got != 52 {
		t.Errorf("UploadedBytes = %d, want 52", got)
	}
}
