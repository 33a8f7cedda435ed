// Package nntest checks that an nn.Backend keeps the contract of nn/backend.go, by
// running every operation, then a probe's training step, on it and on the CPU backend
// (itself checked against float64 references and PyTorch in package nn) with the same
// inputs, and comparing the results.
//
// A backend's tests call it once:
//
//	func TestConformance(t *testing.T) { nntest.Conformance(t, kemu.New(), nntest.Options{Small: true}) }
//
// What must agree, and how closely:
//   - Results that are choices or copies must be bit-identical: argmax, Gumbel-max
//     samples and dropout masks (the counter RNG of nn/rng.go), gathered rows, column
//     copies and folds, counts, the leave-one-out means, a clipping that does not clip.
//   - Float results agree within a tolerance relative to each output's scale (its
//     largest magnitude): 1e-6 where an element takes one or two float32 roundings or a
//     float64 sum rounded once, 1e-5 through chains of float32 operations and exp, log
//     and sqrt (BatchNorm, softmax, the probe), and each GEMM precision's own
//     tolerance (Options.GemmModes).
//
// Options.GemmModes lets a device backend run the GEMM check in each of its precisions
// (cudaops: fp32, tf32, bf16); the rest of the suite runs in the first, exact, mode.
// Options.Small shrinks the shapes that are large only to be realistic (an MCT batch,
// long grid-stride loops) for a slow backend such as kemu's kernel emulator; the
// shapes that test edges (one row, partial blocks, rows longer than a block) stay.
//
// A failure names the operation, its arguments, the worst element and both values; a
// backend author can trust it to be theirs, as the CPU backend passes the suite against
// itself (TestConformanceCPU).
package nntest
