// Interface frozen: 2026-11-27 07:35 UTC; extended for device-side scalars (DotTo,
// Mean, ClipNorm, CountEqual), MeanOthers and SampleGumbel's device row indices, for
// per-update values read from device memory (the stepAt/scaleAt/sched operands of
// DropoutMask, SampleGumbel, SoftmaxCE and Adam) so a recorded step can be replayed,
// for GatherRows (a batch gathered on the device from resident features), and for
// fewer passes over memory: gradients written without a pass to clear or clip them
// first (BNBackwardStats' beta, ClipCoef, Adam's gscale), LeakyReLUBackward out of
// place, GemmStrided, BNNormalize into a column block.

package nn

import "math"

// Buf is a float32 buffer owned by a Backend: a host slice for the CPU backend,
// device memory for CUDA. Only the Backend that made it may use it.
type Buf interface {
	// Len is the number of float32 elements.
	Len() int
}

// Backend is the compute device under the probe and the MCT step. Every matrix is
// row-major float32 and densely packed (the row stride is the column count) unless a
// stride is passed. Operations may run asynchronously in device order; the methods
// that return host values (Download, Dot) and Sync wait for the work before them, and
// nothing else does. A device step therefore keeps its scalars (losses, norms, counts)
// in device buffers (Mean, DotTo, ClipNorm, CountEqual) and reads them back together in
// one Download.
//
// Unless stated otherwise an operation reads the first rows·cols elements of its
// inputs and writes the first rows·cols of its output; buffers may be longer. A
// shape that does not fit a buffer is a programmer error and panics. Outputs may
// alias inputs only where the method says so.
//
// Values that change from one update to the next (RNG steps, Adam's step size and bias
// correction, the MCT teacher's feedback weights) can be passed in a device buffer
// instead of as an argument: the optional stepAt, scaleAt and sched operands. A step
// that uploads them with its inputs then issues the same calls, with the same
// arguments, every update, which is what lets a backend record the calls once and
// replay them (cudaops' CUDA graphs); so callers pass 0 for an argument an operand
// replaces (train's TestRecordedSegmentsSameCalls checks the MCT step). nil means the
// argument is used.
//
// Conventions shared by all backends so results agree across them:
//   - Labels and class indices are float32 holding small non-negative integers.
//   - Reductions (ColSums, BNStats, BNBackwardStats, Dot, row softmax sums) should
//     accumulate in float64 or an equivalent compensated/tree sum.
//   - Random numbers come from the counter-based generator of rng.go (Philox4x32-10,
//     keyed by RNGKey), so every backend draws the same numbers for the same keys.
type Backend interface {
	// Name identifies the backend ("cpu", "cuda:0", ...).
	Name() string

	// Alloc returns a zeroed buffer of n elements.
	Alloc(n int) Buf
	// Free releases a buffer from Alloc; the buffer and its views must not be used
	// afterwards. Freeing a view is a no-op.
	Free(b Buf)
	// View returns elements [off, off+n) of b as a Buf sharing b's memory.
	View(b Buf, off, n int) Buf
	// Upload copies src into dst[0:len(src)].
	Upload(dst Buf, src []float32)
	// Download copies src[0:len(dst)] into dst, waiting for pending work on src.
	Download(dst []float32, src Buf)
	// Copy copies src[0:n] into dst[0:n]; dst and src must not overlap. src may belong
	// to another backend that this one shares with (Sharer).
	Copy(dst, src Buf, n int)
	// Fill sets x[0:n] to v.
	Fill(x Buf, n int, v float32)
	// GatherRows copies n rows of cols elements by index: dst[i·cols+j] =
	// src[k·cols+j] for i < n, j < cols, with k = idx[i] stored as the bits of a uint32
	// (IndexBits). A batch's rows are gathered this way from features kept on the
	// device, so a step uploads n indices instead of n·cols values. A k with
	// (k+1)·cols > src.Len() is a programmer error: the CPU backend panics; a device
	// backend, which cannot, fills row i with NaN, so the loss shows it. dst must not
	// overlap src or idx.
	GatherRows(dst, src Buf, cols int, idx Buf, n int)
	// Sync waits until all issued work has finished.
	Sync()

	// Gemm computes C = alpha·op(A)·op(B) + beta·C with op(A) m×k, op(B) k×n and C m×n,
	// all densely packed (A is stored k×m when tA, B is stored n×k when tB). With
	// beta = 0, C is overwritten (NaN in C is ignored).
	Gemm(tA, tB bool, m, n, k int, alpha float32, a, b Buf, beta float32, c Buf)
	// GemmStrided is Gemm on blocks of larger row-major matrices: the stored rows of A,
	// B and C lie lda, ldb and ldc elements apart (each at least its stored row's length)
	// instead of packed, so a product can read a weight's column block or write a
	// gradient's without a copy. Each buffer holds its last row's end: (rows−1)·ld + cols.
	GemmStrided(tA, tB bool, m, n, k int, alpha float32, a Buf, lda int, b Buf, ldb int, beta float32, c Buf, ldc int)

	// CopyCols moves a column block between two matrices with row strides dstCols and
	// srcCols: dst[r, dstOff+j] = beta·dst[r, dstOff+j] + src[r, srcOff+j] for r < rows,
	// j < cols. beta = 0 copies (building a concatenation), beta = 1 accumulates
	// (the backward of a concatenation). The blocks must not overlap: dst and src are
	// different buffers, or one buffer with one row stride and disjoint columns.
	CopyCols(dst Buf, dstCols, dstOff int, src Buf, srcCols, srcOff int, rows, cols int, beta float32)

	// FoldCols builds the effective weight of an input whose last column block
	// repeats an earlier one ([h0, h1, h1]·Wᵀ = [h0, h1]·W_effᵀ): for dst rows×dstCols
	// and src rows×srcCols with w = srcCols − dstCols and off+w ≤ dstCols,
	// dst[r,j] = src[r,j] + src[r,dstCols+j−off] for off ≤ j < off+w, src[r,j] otherwise
	// (one float32 add, as a copy and an accumulating CopyCols give). dst and src must
	// not overlap.
	FoldCols(dst Buf, dstCols int, src Buf, srcCols, rows, off int)
	// UnfoldCols is FoldCols' adjoint, accumulated: for dst rows×dstCols and src
	// rows×srcCols with w = dstCols − srcCols, dst[r,j] = beta·dst[r,j] + src[r,j] for
	// j < srcCols and beta·dst[r,j] + src[r,off+j−srcCols] for j ≥ srcCols (every
	// repeat's weight gradient from the effective weight's). beta = 0 does not read dst.
	UnfoldCols(dst Buf, dstCols int, src Buf, srcCols, rows, off int, beta float32)

	// Axpy computes y[0:n] += alpha·x[0:n].
	Axpy(y Buf, alpha float32, x Buf, n int)
	// Scale computes x[0:n] *= alpha.
	Scale(x Buf, n int, alpha float32)
	// Mul computes x[0:n] *= y[0:n] element by element (dropout's mask and its backward).
	Mul(x, y Buf, n int)
	// Dot returns Σ x[i]·y[i] over [0,n), accumulated in float64. It waits for the
	// device; DotTo is the same sum left on the device.
	Dot(x, y Buf, n int) float64
	// DotTo writes dst[0] = Σ x[i]·y[i] over [0,n), accumulated in float64 and rounded
	// once to float32 (the --exact-h product, read back with the step's other scalars).
	DotTo(dst, x, y Buf, n int)
	// Mean writes dst[0] = (Σ_{i<n} x[i])/n, summed in float64 and rounded once (a
	// batch's mean loss from SoftmaxCE's per-row losses, kept on the device).
	Mean(dst, x Buf, n int)
	// ClipNorm scales x[0:n] as torch.nn.utils.clip_grad_norm_ does: with
	// ‖x‖ = sqrt(Σ x²) summed in float64 and coef = maxNorm/(‖x‖+1e-6) in float64,
	// x *= float32(coef) when coef < 1. It writes float32(‖x‖) to norm[0] unless norm
	// is nil. The device reads the norm itself: no host wait.
	ClipNorm(x Buf, n int, maxNorm float32, norm Buf)
	// ClipCoef is ClipNorm without the scaling: it writes the factor ClipNorm would
	// scale x by to coef[0] (float32(coef) when coef < 1, else 1) and leaves x as it is,
	// for Adam's gscale operand to apply as it reads the gradient (one pass over it
	// instead of three). norm as in ClipNorm.
	ClipCoef(coef, x Buf, n int, maxNorm float32, norm Buf)
	// CountEqual writes dst[r] = #{c < cols : a[r·cols+c] == b[c]} for r < rows, as
	// float32 (exact below 2^24): every view's pseudo-labels (rows = views) against
	// the true labels of the unlabeled batch.
	CountEqual(dst, a, b Buf, rows, cols int)
	// MeanOthers writes the leave-one-out means of views blocks of n elements:
	// dst[w·n+i] = Σ_{o≠w} a·src[o·n+i] with a = float32(1/(views−1)), accumulated in
	// float32 from 0 in increasing o (the MCT ensemble logits m_w of every view, in one
	// pass). views ≥ 2; dst and src must not overlap.
	MeanOthers(dst, src Buf, views, n int)

	// AddBiasLeakyReLU computes, in place on the rows×cols matrix x,
	// x[r,j] = f(x[r,j] + bias[j]) with f(v) = v for v > 0 and slope·v otherwise.
	// slope = 1 is a plain bias add. bias may be nil (no bias).
	AddBiasLeakyReLU(x, bias Buf, rows, cols int, slope float32)
	// LeakyReLUBackward computes dx[i] = dy[i]·(y[i] > 0 ? 1 : slope) for i < n, where y
	// is the activation's OUTPUT (same sign as its input for slope > 0; at 0 it takes
	// slope, as PyTorch does). dx may be dy.
	LeakyReLUBackward(dx, dy, y Buf, n int, slope float32)
	// ColSums computes dst[j] = beta·dst[j] + Σ_r x[r,j] (bias gradients with beta = 1).
	ColSums(dst Buf, x Buf, rows, cols int, beta float32)

	// BatchNorm in training mode is split at the two batch reductions so a caller can
	// all-reduce them over data-parallel replicas between the calls. The statistics
	// buffer holds 2·cols+1 elements: two column sums and the row count.
	//
	// BNStats writes the shifted sums of x (rows×cols) with shift s = runMean:
	// stats[j] = Σ_r (x[r,j]−s[j]), stats[cols+j] = Σ_r (x[r,j]−s[j])², stats[2cols] = rows.
	// (The shift keeps E[x²]−E[x]² from cancelling; all replicas hold the same runMean.)
	BNStats(stats, x, runMean Buf, rows, cols int)
	// BNMoments turns (possibly all-reduced) stats into the batch moments and updates
	// the running statistics, PyTorch semantics: N = stats[2cols],
	// mean = s + S1/N, var = S2/N − (S1/N)² (biased, clamped at 0), then
	// runMean = (1−momentum)·runMean + momentum·mean,
	// runVar = (1−momentum)·runVar + momentum·var·N/(N−1).
	// runMean is read as the shift s before it is updated.
	BNMoments(mean, variance, runMean, runVar, stats Buf, cols int, momentum float32)
	// BNNormalize computes y = (x − mean)/sqrt(var + eps)·gamma + beta per column
	// (train mode: batch mean and biased var; eval mode: running statistics). y's rows
	// lie ldy elements apart (cols: packed; more: y is a column block of a wider matrix,
	// holding (rows−1)·ldy + cols elements). y may be x when ldy = cols.
	BNNormalize(y Buf, ldy int, x, mean, variance, gamma, beta Buf, rows, cols int, eps float32)
	// BNBackwardStats writes stats[j] = Σ_r dy[r,j], stats[cols+j] = Σ_r dy[r,j]·x̂[r,j]
	// and stats[2cols] = rows, with x̂ = (x−mean)/sqrt(var+eps). The two sums are also
	// dβ and dγ of this replica's rows: unless nil, dbeta[j] = beta·dbeta[j] + stats[j]
	// and dgamma[j] = beta·dgamma[j] + stats[cols+j] (float32 arithmetic on the stored
	// sums, as two Axpy calls would do after a Scale, in the same pass; beta = 0 does not
	// read them).
	BNBackwardStats(stats, dgamma, dbeta, dy, x, mean, variance Buf, rows, cols int, eps, beta float32)
	// BNBackward writes dx = gamma/sqrt(var+eps)·(dy − S1/N − x̂·S2/N) from the
	// (possibly all-reduced) backward stats, N = stats[2cols], then multiplies it by
	// the derivative of a LeakyReLU(slope) whose output is x: dx[i] *= (x[i] > 0 ? 1 :
	// slope), as LeakyReLUBackward(dx, dx, x) would (the fcnn's activation before its BN);
	// slope = 1 means no activation. dx may be dy.
	BNBackward(dx, dy, x, mean, variance, gamma, stats Buf, rows, cols int, eps, slope float32)

	// DropoutMask fills mask[0:rows·cols] with 0 (probability p) or 1/(1−p), using the
	// uniform u = Uniform(key, rowBase+r, c) for element (r, c): dropped when u < p.
	// If stepAt is not nil, key.Step is replaced by the uint32 in stepAt[0] (IndexBits).
	DropoutMask(mask Buf, rows, cols int, p float32, key RNGKey, rowBase uint32, stepAt Buf)

	// SoftmaxCE computes, for the rows×cols logits x and float32 class labels,
	// p = softmax(invT·x) per row, loss[r] = −log p[r, label[r]] (loss may be nil), and,
	// when dx is not nil, dx = beta·dx + scale·(p − onehot(label)). The factor invT of
	// the exact gradient w.r.t. x is NOT applied: pass scale·invT for it. dx may not
	// alias x. This one kernel serves the supervised loss (invT = 1, scale = 1/B), the
	// student loss on pseudo-labels and the MCT teacher pieces
	// Σ_v h_v/(V−1)·(softmax(m_v/T) − onehot(ŷ_v))/B (beta = 1 to accumulate). If
	// scaleAt is not nil, scaleAt[0] is used instead of scale (the teacher's weights,
	// which depend on the exchanged h).
	SoftmaxCE(loss, dx, x, labels Buf, rows, cols int, invT, scale, beta float32, scaleAt Buf)
	// Softmax writes y = softmax(invT·x) per row; y may be x.
	Softmax(y, x Buf, rows, cols int, invT float32)
	// Argmax writes dst[r] = the first column index of a row maximum, as float32.
	Argmax(dst, x Buf, rows, cols int)
	// SampleGumbel draws dst[r] ~ Categorical(softmax(invT·x[r,·])) by the Gumbel-max
	// trick: dst[r] = argmax_c (invT·x[r,c] + Gumbel(key, i_r, c)), evaluated in
	// float64 (see rng.go). rowIndex[r] holds the row's key index i_r (the global
	// example index, so the draw does not depend on batch layout or rank) as the bits
	// of a uint32 (IndexBits), so every uint32 is exact; it is a device buffer so that
	// a step uploads it with its batch instead of per call. If stepAt is not nil,
	// key.Step is replaced by the uint32 in stepAt[0] (IndexBits).
	SampleGumbel(dst, x Buf, rows, cols int, invT float32, key RNGKey, rowIndex, stepAt Buf)

	// Adam applies one torch.optim.Adam step (PyTorch 1.13 single-tensor semantics) to
	// n parameters w with gradient g and moments m, v:
	// g' = g + wd·w; m = β1·m + (1−β1)·g'; v = β2·v + (1−β2)·g'² (1−β from h);
	// w −= stepSize·m/(sqrt(v)/bc2Sqrt + eps), where the host computes
	// stepSize = lr/(1−β1^t) and bc2Sqrt = sqrt(1−β2^t) in float64. g is not modified.
	// If sched is not nil, stepSize and bc2Sqrt are read from sched[0] and sched[1]
	// instead of h (see (*Adam).Scalars). If gscale is not nil, the gradient is
	// g[i]·gscale[0] (a float32 product, the value ClipNorm would have stored; gscale
	// from ClipCoef).
	Adam(w, g, m, v Buf, n int, h AdamHyper, sched, gscale Buf)
}

// Recorder is implemented by a backend that can record a fixed sequence of calls once
// and replay it (cudaops: a CUDA graph per key), so that a step's hundred-odd launches
// cost one. Callers find it with a type assertion; the CPU backend has none.
//
// Record runs f, which may only queue work on the backend: no Download, Dot, Sync,
// Upload, Alloc or Free inside (a step's uploads and host reads go between
// recordings). f runs on every call, so its host-side effects (counters, RNG state)
// happen every time; the backend replays the recording made under key when f issued
// exactly the same calls with the same arguments, and records anew when it did not
// (different shapes, buffers or argument values), so a replay never computes with
// stale arguments. Values that change every call belong in device buffers (the
// stepAt, scaleAt and sched operands above). A non-nil error says the recording could
// not be made or replayed; f's work was then issued directly (results are right) and
// the caller should stop recording.
type Recorder interface {
	Record(key string, f func()) error
}

// Sharer is implemented by a backend whose Copy can read the buffers of other backends
// of this process, on its own queue: the CPU backend (host memory) and cudaops backends
// of one GPU (one context). Views that share a process pass the MCT teacher logits to
// each other this way, without the host. The marks order the two queues: after
// o.Mark(k), a.After(o, k) makes the work a queues next wait for the work o had queued
// before the mark. For a backend that finishes every call before returning (CPU), Mark
// and After do nothing.
type Sharer interface {
	// Shares reports whether Copy on this backend may read o's buffers.
	Shares(o Backend) bool
	// Mark records mark k (0 ≤ k < Marks) at the end of the work queued so far,
	// replacing this backend's previous mark k.
	Mark(k int)
	// After makes the work queued on this backend from now on wait for o's latest
	// Mark(k); o.Mark(k) must not run again until After has returned.
	After(o Backend, k int)
}

// Marks is the number of marks a Sharer keeps.
const Marks = 2

// Addresser is implemented by a backend whose buffers live outside Go's heap (cudaops:
// GPU memory): Addr is b's address, for a collective that takes memory by address (a
// CUDA-aware MPI library, ranks.AddrComm). The work queued on b must have finished
// (Sync) before the collective reads or writes it.
type Addresser interface {
	Addr(b Buf) uintptr
	// InContext runs f, such a collective, with the backend's device current on the
	// calling thread (CUDA: its context), which CUDA-aware MPI libraries may need to
	// reach the memory.
	InContext(f func())
}

// Adopter is implemented by a backend whose buffers are host memory (the CPU backend):
// Adopt returns host itself as a Buf, without a copy, so that a caller can give the
// backend a large array it already holds (a view's training features, read by
// GatherRows) without a second copy in memory. The Buf aliases host: the caller must
// not change host while the Buf is in use, and must not Free it.
type Adopter interface {
	Adopt(host []float32) Buf
}

// PackedLD is the row strides of Gemm's packed A and B (C's is n): a stored row is k
// long, or m for a transposed A, and n, or k for a transposed B; at least 1, as BLAS
// requires even of an empty matrix.
func PackedLD(tA, tB bool, m, n, k int) (lda, ldb int) {
	lda, ldb = k, n
	if tA {
		lda = m
	}
	if tB {
		ldb = k
	}
	return max(lda, 1), max(ldb, 1)
}

// IndexBits stores the uint32 i in a float32 slot bit for bit, for SampleGumbel's row
// indices; backends read the slot back as math.Float32bits. The value is only copied,
// never computed with, so every uint32 (NaN patterns included) survives.
func IndexBits(i uint32) float32 { return math.Float32frombits(i) }

// AdamHyper carries one Adam step's scalars, computed on the host by (*Adam).Step.
// OneMinusBeta1 and OneMinusBeta2 are 1−β computed in float64 and rounded once, as
// PyTorch passes them (1−β in float32 arithmetic is off by up to 1.3e-5 relative).
type AdamHyper struct {
	StepSize, Beta1, Beta2, Eps, WeightDecay, BC2Sqrt float32
	OneMinusBeta1, OneMinusBeta2                      float32
}
