package data

import "fmt"

// Sampler yields batches of indices drawn without replacement from a fixed index
// list, in a fresh permutation each epoch. The permutation of epoch e is a pure
// function of (seed, e), so the whole state is (epoch, position): save State in a
// checkpoint, Restore it, and the batches continue exactly. Every view uses the
// same Sampler output, which is how views stay aligned: share indices, never rows.
//
// Batches always have the requested size: the last batch of an epoch is completed
// from the start of the next epoch's permutation (so BatchNorm never sees a tiny
// batch and no example is skipped).
type Sampler struct {
	idx   []int
	batch int
	seed  uint64
	st    SamplerState
	perm  []int // permutation of idx for epoch st.Epoch
}

// SamplerState is the serialisable position of a Sampler: Pos indices of epoch
// Epoch have been handed out.
type SamplerState struct {
	Epoch int `json:"epoch"`
	Pos   int `json:"pos"`
}

// NewSampler returns a sampler over idx (copied) with batches of batch indices.
// It panics if idx is empty or batch < 1: both are programming errors.
func NewSampler(idx []int, batch int, seed uint64) *Sampler {
	if len(idx) == 0 || batch < 1 {
		panic(fmt.Sprintf("data.NewSampler: %d indices, batch %d: want at least one index and batch >= 1", len(idx), batch))
	}
	s := &Sampler{idx: append([]int(nil), idx...), batch: batch, seed: seed}
	s.Restore(SamplerState{})
	return s
}

// Next returns the next batch (a new slice the caller may keep).
func (s *Sampler) Next() []int {
	out := make([]int, 0, s.batch)
	for len(out) < s.batch {
		if s.st.Pos == len(s.perm) {
			s.Restore(SamplerState{Epoch: s.st.Epoch + 1})
		}
		k := min(s.batch-len(out), len(s.perm)-s.st.Pos)
		out = append(out, s.perm[s.st.Pos:s.st.Pos+k]...)
		s.st.Pos += k
	}
	return out
}

// Epoch is the number of completed passes over the indices.
func (s *Sampler) Epoch() int {
	if s.st.Pos == len(s.perm) {
		return s.st.Epoch + 1
	}
	return s.st.Epoch
}

// Len is the number of indices the sampler draws from.
func (s *Sampler) Len() int { return len(s.idx) }

// State returns the current position, to be saved in a checkpoint.
func (s *Sampler) State() SamplerState { return s.st }

// Restore moves the sampler to a position returned by State. A state that does
// not fit this sampler's index list panics: it means the checkpoint belongs to
// another configuration, which the caller must detect before restoring.
func (s *Sampler) Restore(st SamplerState) {
	if st.Epoch < 0 || st.Pos < 0 || st.Pos > len(s.idx) {
		panic(fmt.Sprintf("data.Sampler.Restore: state %+v does not fit %d indices", st, len(s.idx)))
	}
	if s.perm == nil || s.st.Epoch != st.Epoch {
		s.perm = append(s.perm[:0], s.idx...)
		shuffle(s.perm, s.seed, uint64(st.Epoch))
	}
	s.st = st
}

// Gather copies rows of the row-major matrix m (dim columns) into dst:
// dst[i,:] = m[rows[i],:]. dst must hold len(rows)*dim values; a size mismatch or
// a row out of range panics (a programming error, like a bad slice index).
func Gather(dst []float32, m []float32, dim int, rows []int) {
	if len(dst) != len(rows)*dim || dim <= 0 || len(m)%dim != 0 {
		panic(fmt.Sprintf("data.Gather: dst has %d values for %d rows of dim %d; m has %d values", len(dst), len(rows), dim, len(m)))
	}
	for i, r := range rows {
		copy(dst[i*dim:(i+1)*dim], m[r*dim:(r+1)*dim])
	}
}

// GatherLabels copies labels[rows[i]] into dst[i].
func GatherLabels(dst []int32, labels []int32, rows []int) {
	if len(dst) != len(rows) {
		panic(fmt.Sprintf("data.GatherLabels: dst has %d values for %d rows", len(dst), len(rows)))
	}
	for i, r := range rows {
		dst[i] = labels[r]
	}
}
