// Package nn is mct's neural-network layer: the MLP probe trained on each view, its
// hand-written backward pass, softmax cross-entropy, Adam and gradient clipping, all
// written once over a compute Backend. (The learning-rate schedule and early stopping
// belong to the training loop, package train.)
//
// # Backend
//
// A Backend (backend.go) owns float32 buffers (Buf) and runs the kernels the MCT step
// needs: GEMM, fused bias+LeakyReLU, BatchNorm split at its batch reductions (so
// data-parallel replicas can all-reduce them), softmax cross-entropy with temperature
// and an accumulate/scale form for the MCT teacher gradient, Gumbel-max sampling from
// the counter-based RNG of rng.go (Philox4x32-10, specified bit for bit), Adam and
// dot products. NewCPU is the CPU backend (GEMM through package blas, other kernels
// in Go with float64 reductions); cudaops provides the CUDA one, and package nntest
// checks any backend against the CPU one.
//
// # Probe
//
// NewProbe builds one of three architectures (Config.Arch): "fcnn", the reference
// FCNN traced exactly (duplicated dense skips, LeakyReLU before BatchNorm, logits
// LeakyReLU'd then divided by the temperature); "mlp", the clean variant; "linear".
// Weights start as PyTorch's default initialisation, drawn from the seed. All
// parameters sit in one flat buffer (Params are views in PyTorch state_dict order),
// and so do Grads and Adam's moments: an optimizer step, a norm or an all-reduce is
// one call on one buffer.
//
// A Tape holds one forward's activations. Backward adds dL/dθ for a given dL/dlogits
// and may run several times per Forward (the MCT student and teacher gradients both
// flow through the step-1 activations); after Grads.Zero it writes instead of adding,
// so zeroing costs no pass over the gradients. A tape made with keepWeights snapshots the
// weights at Forward, so its Backward differentiates at those weights even after an
// optimizer step. One supervised update:
//
//	b := nn.NewCPU()
//	p, err := nn.NewProbe(b, nn.Config{Arch: "fcnn", In: 784, Classes: 10}, seed)
//	tape, g, opt := p.NewTape(batch, false), p.NewGrads(), nn.NewAdam(p, 1e-4)
//	x, y, dl := b.Alloc(batch*784), b.Alloc(batch), b.Alloc(batch*10)
//	// per step: upload the batch (rows of features; labels as float32 class indices)
//	b.Upload(x, features)
//	b.Upload(y, labels)
//	g.Zero()
//	logits := p.Forward(tape, x, batch, nn.Train)
//	loss := nn.CrossEntropy(b, logits, batch, 10, y, dl, 1)
//	p.Backward(tape, dl, g)
//	opt.StepClipped(g, 1, nil) // clip_grad_norm_(1), then the Adam step
//
// # Data parallelism
//
// With R replicas of a view, each replica runs its share of the batch and sets
// Probe.Reduce to an all-reduce (sum) over the pool: BatchNorm then uses the batch
// statistics of the whole global batch, forward and backward, and the replica's
// gradients summed over the pool equal the single-process gradient when dlogits is
// scaled by 1/(global batch). DropoutRowBase gives each replica its rows' masks.
// Gradients travel through Grads.Download/Upload (one host slice).
//
// # MCT pieces
//
// The MCT step's ensemble logits m_v of every view are one Backend.MeanOthers, its
// pseudo-labels Backend.SampleGumbel on them (key: seed, update step, view; row index:
// the global example index, in a device buffer uploaded with the batch), and the
// teacher output gradient Σ_{v≠w} h_v/(V−1)·(softmax(m_v/T) − onehot(ŷ_v))/B is one
// Backend.SoftmaxCE per v with beta = 1 after the first, back-propagated with
// Backward through the kept step-1 tape. --exact-h is Backend.DotTo of two Grads.Flat.
//
// # Waiting for the device
//
// Only Download, Dot and Sync make the host wait for a device backend. CrossEntropy,
// ClipGradNorm and Dot return host values and wait; their device-side forms
// (Loss.CrossEntropyTo, Grads.Clip, Backend.DotTo, Mean, CountEqual) leave the
// result in a device buffer, so a step can queue all its work and read its scalars
// back in one Download; Adam.StepClipped keeps its clipping factor there.
//
// # Batches gathered on the device
//
// A caller that keeps a dataset in a backend buffer gathers a batch's rows there with
// Backend.GatherRows from the rows' indices (IndexBits, uploaded with the batch), so
// only the indices cross to the device. On the CPU backend that buffer need not be a
// copy: Adopter wraps the caller's own slice as a Buf. CPU.UploadedBytes (and
// cudaops') count the bytes uploaded, which is how the MCT step's traffic is measured.
//
// # Recording and replaying a step
//
// A backend that implements Recorder (cudaops: CUDA graphs) can record a part of a
// step that only queues work and replay it as one launch. That needs the same calls
// with the same arguments every time, so what changes between updates is passed in
// device memory, uploaded with the step's inputs: Probe.DropoutStepAt (dropout's RNG
// step), SampleGumbel's and DropoutMask's stepAt, SoftmaxCE's scaleAt (the teacher's
// feedback weights) and Adam.StepAt with Adam.Scalars. The values are the same ones
// passed as arguments otherwise, so results do not change by a bit.
//
// Shape mistakes (a buffer too short, a tape too small, another probe's tape) are
// programmer errors and panic at the call; configuration and state errors are
// returned.
package nn
