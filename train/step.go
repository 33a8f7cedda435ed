package train

import (
	"fmt"

	"mct/data"
	"mct/nn"
	"mct/ranks"
)

// stepStats is what one MCT update reports, identical on every rank after the exchange.
type stepStats struct {
	H          []float64 // meta-feedback h_v of every view
	LossBefore float64   // this view's labeled loss before its student step
	LossAfter  float64   // and after
	PseudoHits []float64 // per view: pseudo-labels equal to the true label, on this replica's rows
	Known      int       // of those rows, how many have a known true label (data.Unknown: -1)
	Agreement  float64   // mean pairwise argmax agreement of the views on the unlabeled batch
}

// Slots of rank.scal, the step's scalars that the host reads back in one download.
const (
	slotLossBefore = iota
	slotLossAfter
	slotDot   // --exact-h: ⟨g_sup(θ'), g_student⟩
	slotHits0 // then one per view: pseudo-labels equal to the true label, then one per
	// pair of views a < b (in the order of pairs): rows where their teacher logits have the
	// same argmax
)

// scalars is the length of rank.scal for V views.
func scalars(V int) int { return slotHits0 + V + V*(V-1)/2 }

// Slots of the update's per-step values (stepIn from offDyn, viewed by rank.dynView):
// they change from one update to the next, so the kernels read them from device memory
// (uploaded with the batch) and the update issues the same launches with the same
// arguments every time, which lets it be replayed as CUDA graphs. RNG steps are
// nn.IndexBits.
const (
	dynDropU       = iota               // dropout step of the teacher forward on U
	dynDropBefore                       // of the labeled forward before the student step
	dynDropAfter                        // and after it
	dynSample                           // the update step: the pseudo-label sampling's RNG step
	dynAdamStudent                      // Adam's step size and sqrt(1−β2^t) for the student step,
	dynAdamTeacher = dynAdamStudent + 2 // and for the teacher step
	dynLen         = dynAdamTeacher + 2
)

// mctUpdate is one Meta Co-Training update (DESIGN.md "The MCT step") of this rank's view on
// the global unlabeled batch u and labeled batch l, whose indices every rank shares. It
// exchanges exactly two things with the peers (the other views): the teacher logits on
// this replica's unlabeled rows, and the scalar feedback h.
//
// The teacher logits go from view to view on the devices when the views share a process
// and their backends share memory (exchangeBackends, peerLogits); the host then waits
// once per update with one replica (TestHostWaitsPerUpdate), for one download of the
// scalars it needs (losses, the exact-h product, pseudo-label hits, agreement) before h
// is exchanged. Under MPI it also waits for the teacher logits, which MPI all-gathers on
// the device with a CUDA-aware library (exchangeMPIDevice) or else on the host, from
// where the other views' logits are uploaded (in two pieces, before and after its own,
// for a view between the first and the last). The host uploads twice more, each before
// the device work that needs it: the batch with the update's per-step values, and the
// teacher's feedback weights.
// With the view's features resident on the device (rank.res) the batch is its row indices
// and labels, and segments A and B gather the rows there (GatherRows) before using them.
// Between them lie three segments that only queue device work — A (teacher forward), B
// (steps 2–4) and C (teacher step) — which a backend that records (nn.Recorder: CUDA
// graphs) replays as one launch each. Data-parallel replicas add the host all-reduces of
// BatchNorm sums and gradients, inside the segments, and are not recorded.
func (r *rank) mctUpdate(step int, u, l []int, truth []int32) stepStats {
	be, C, V := r.be, r.C, r.V
	ulo, uhi := r.localRange(len(u))
	uRows, n := u[ulo:uhi], uhi-ulo
	llo, lhi := r.localRange(len(l))
	lRows, nl := l[llo:lhi], lhi-llo
	invB := 1 / float32(len(u))
	r.uploadStep(step, uRows, lRows, truth)
	defer func() { r.probe.DropoutStepAt = nil }() // other callers pass the step themselves
	seg := func(name string, f func()) {
		r.segment(fmt.Sprintf("mct/%s/u%d-%d/l%d-%d", name, n, len(u), nl, len(l)), f)
	}

	// 1. Teacher pass: z_v = f_v(U_v), activations and weights kept on tapeU.
	var z nn.Buf
	seg("A", func() {
		if r.res != nil {
			be.GatherRows(r.xU, r.res, r.dim, r.uKey, n)
		}
		r.probe.DropoutRowBase = uint32(ulo) // replicas draw their own rows' dropout masks
		r.probe.DropoutStepAt = r.dynView[dynDropU]
		z = r.probe.Forward(r.tapeU, r.xU, n, nn.Train)
		// This view's block of the gathered logits never leaves the device.
		be.Copy(be.View(r.zAll, r.view*n*C, n*C), z, n*C)
	})
	switch r.exchange {
	case exchangeBackends:
		r.xchg.exchange(r, n)
	case exchangeMPIDevice:
		r.allgatherOnDevice(n)
	default:
		all := r.host[:V*n*C]
		lo, hi := r.view*n*C, (r.view+1)*n*C
		be.Download(all[lo:hi], z)
		r.peer.AllgatherF32(all[lo:hi], all)
		// Only the other views' logits go up: before this view's block and after it.
		if lo > 0 {
			be.Upload(be.View(r.zAll, 0, lo), all[:lo])
		}
		if hi < len(all) {
			be.Upload(be.View(r.zAll, hi, len(all)-hi), all[hi:])
		}
	}

	invT := 1 / r.cfg.PseudoT
	seg("B", func() {
		// 2. Pseudo-labels of every view (each rank recomputes all of them, so none
		// crosses the wire): m_w = mean of the other views' logits, ŷ_w ~ Cat(softmax(m_w/T)).
		be.MeanOthers(r.mEns, r.zAll, V, n*C)
		if r.cfg.Hard {
			be.Argmax(r.yHat, r.mEns, V*n, C)
		} else {
			for w := 0; w < V; w++ {
				be.SampleGumbel(be.View(r.yHat, w*n, n), be.View(r.mEns, w*n*C, n*C), n, C, invT,
					nn.RNGKey{Seed: r.cfg.Seed, Stream: uint32(w)}, r.uKey, r.dynView[dynSample])
			}
		}
		be.CountEqual(be.View(r.scal, slotHits0, V), r.yHat, r.uTruth, V, n)
		// The views' agreement (monitoring only): view a's argmax against every later view's.
		be.Argmax(r.yArg, r.zAll, V*n, C)
		for a, k := 0, slotHits0+V; a < V-1; a++ {
			be.CountEqual(be.View(r.scal, k, V-1-a), be.View(r.yArg, (a+1)*n, (V-1-a)*n), be.View(r.yArg, a*n, n), V-1-a, n)
			k += V - 1 - a
		}

		// 3. Student step on this view's own pseudo-labels, L_before measured first.
		if r.res != nil {
			be.GatherRows(r.xLStep, r.res, r.dim, r.lKey, nl)
		}
		r.probe.DropoutRowBase = uint32(llo)
		r.probe.DropoutStepAt = r.dynView[dynDropBefore]
		zb := r.probe.Forward(r.tapeX, r.xLStep, nl, nn.Train)
		r.loss.CrossEntropyTo(be.View(r.scal, slotLossBefore, 1), zb, nl, C, r.yLStep, nil, 0)
		be.SoftmaxCE(nil, r.dz, z, be.View(r.yHat, r.view*n, n), n, C, 1, invB, 0, nil)
		r.g.Zero()
		r.probe.Backward(r.tapeU, r.dz, r.g)
		if r.cfg.ExactH {
			// --exact-h keeps the clipped student gradient: clipped in place first.
			r.poolSum(r.g)
			if r.cfg.Clip > 0 {
				r.g.Clip(r.cfg.Clip)
			}
			be.Copy(r.gs.Flat(), r.g.Flat(), r.g.Len())
			r.opt.StepAt(r.g, r.dynView[dynAdamStudent])
		} else {
			r.step(r.cfg.Clip, r.dynView[dynAdamStudent])
		}

		// 4. Feedback on the same labeled batch at the new weights: L_after and g_sup.
		r.probe.DropoutStepAt = r.dynView[dynDropAfter]
		zl := r.probe.Forward(r.tapeX, r.xLStep, nl, nn.Train)
		r.loss.CrossEntropyTo(be.View(r.scal, slotLossAfter, 1), zl, nl, C, r.yLStep, r.dz, float32(nl)/float32(len(l)))
		r.g.Zero()
		r.probe.Backward(r.tapeX, r.dz, r.g)
		if r.cfg.ExactH {
			be.DotTo(be.View(r.scal, slotDot, 1), r.g.Flat(), r.gs.Flat(), r.g.Len())
		}
	})
	sc := r.scalHost
	be.Download(sc, r.scal)
	loss := []float64{float64(sc[slotLossBefore]), float64(sc[slotLossAfter])}
	var h float64
	if r.cfg.ExactH {
		// First-order change of the labeled loss, lr·⟨g_sup(θ'), g_student⟩; replicas'
		// partial dot products add up to the dot product with the summed g_sup.
		d := []float64{float64(sc[slotDot]) * float64(r.opt.LR)}
		r.poolMean(d, 1)
		h = d[0] * float64(r.R)
	}
	r.poolMean(loss, float64(nl))
	if !r.cfg.ExactH {
		h = loss[0] - loss[1]
	}
	hs := make([]float64, V)
	r.peer.AllgatherF64([]float64{h}, hs)

	// 5. Teacher step: δ_v = Σ_{w≠v} h_w/(V−1)·(softmax(m_w/T) − onehot(ŷ_w))/B through the
	// step-1 activations at the pre-update weights, added to g_sup. The weights h_w/(V−1)/B
	// reach the kernels through device memory (one upload), like the other per-update values.
	feedback := r.feedback()
	if feedback {
		for w := range hs {
			r.hScaleHost[w] = float32(hs[w]) / float32(V-1) * invB
		}
		be.Upload(r.hScale, r.hScaleHost)
	}
	seg("C", func() {
		if feedback {
			beta := float32(0) // the first term overwrites, the others accumulate
			for w := 0; w < V; w++ {
				if w == r.view {
					continue
				}
				be.SoftmaxCE(nil, r.dz, be.View(r.mEns, w*n*C, n*C), be.View(r.yHat, w*n, n), n, C,
					invT, 0, beta, be.View(r.hScale, w, 1))
				beta = 1
			}
			r.probe.Backward(r.tapeU, r.dz, r.g)
		}
		r.step(r.cfg.Clip, r.dynView[dynAdamTeacher])
	})

	// Pseudo-labels that match the true labels of this replica's unlabeled rows, for
	// monitoring: an Unknown (-1) truth never matches, and Known counts the others.
	hits := make([]float64, V)
	for w := range hits {
		hits[w] = float64(sc[slotHits0+w])
	}
	agree := 1.0
	if pairs := V * (V - 1) / 2; pairs > 0 && n > 0 {
		var same float64
		for _, c := range sc[slotHits0+V:] {
			same += float64(c)
		}
		agree = same / float64(pairs*n)
	}
	known := 0
	for _, e := range uRows {
		if truth[e] != data.Unknown {
			known++
		}
	}
	return stepStats{H: hs, LossBefore: loss[0], LossAfter: loss[1], PseudoHits: hits, Known: known, Agreement: agree}
}

// feedback reports whether the teacher step takes the other views' feedback (step 5).
func (r *rank) feedback() bool { return !r.cfg.NoFeedback && r.V > 1 }

// updateFLOPs is the arithmetic of the matrix products of one view's mctUpdate with
// probe p, batch unlabeled and labeled rows: the teacher forward on the unlabeled batch
// and the student's backward through it, the labeled forwards before and after the
// student step and the supervised backward, and the teacher's backward through the
// step-1 activations when there is feedback. Everything else an update computes is
// elementwise, a few operations per value, and not counted.
func updateFLOPs(p *nn.Probe, batch, labeled int, feedback bool) float64 {
	fu, bu := p.GemmFLOPs(batch)
	fl, bl := p.GemmFLOPs(labeled)
	if feedback {
		bu *= 2
	}
	return fu + bu + 2*fl + bl
}

// segment runs f, a part of the update that only queues device work, through the
// backend's recorder when graphs are on (rank.rec), else directly. A recording that
// fails has still run f's work; graphs are then off for the rest of the run, with one
// warning among the progress lines.
func (r *rank) segment(key string, f func()) {
	if r.rec == nil {
		f()
		return
	}
	if err := r.rec.Record(key, f); err != nil {
		r.rec = nil
		if r.warn != nil {
			r.warn("warning: CUDA graphs off, launching kernels one by one: %v", err)
		}
	}
}

// graphsEverywhere is, when some rank's backend records segments, whether every such
// rank still does (nil when none does): collective.
func (r *rank) graphsEverywhere() *bool {
	_, records := r.be.(nn.Recorder)
	n := []int64{0, 0} // ranks whose backend records, and those of them recording now
	if records {
		n[0] = 1
	}
	if r.rec != nil {
		n[1] = 1
	}
	r.world.AllreduceI64(n, ranks.Sum)
	if n[0] == 0 {
		return nil
	}
	on := n[1] == n[0]
	return &on
}

// uploadStep sends everything the host contributes to one update before h in one upload,
// before the update queues any work: the unlabeled and labeled rows' indices, the labels,
// the unlabeled rows' true labels, the update's per-step values (dyn* slots: the dropout
// steps of its three Train forwards, the sampling step, Adam's scalars for its two steps
// at the current LR) and, unless the features are resident, the rows' features.
func (r *rank) uploadStep(step int, uRows, lRows []int, truth []int32) {
	h, d := r.stepHost, r.dim
	n, nl := len(uRows), len(lRows)
	if n > r.offLKey || nl > r.offYL-r.offLKey {
		panic(fmt.Sprintf("train: update of %d unlabeled and %d labeled rows, buffers sized for %d and %d",
			n, nl, r.offLKey, r.offYL-r.offLKey))
	}
	for i, e := range lRows {
		h[r.offLKey+i] = nn.IndexBits(uint32(e))
		h[r.offYL+i] = float32(r.ds.TrainLabels[e])
	}
	for i, e := range uRows {
		h[i] = nn.IndexBits(uint32(e))
		h[r.offTruth+i] = float32(truth[e])
	}
	dyn := h[r.offDyn : r.offDyn+dynLen]
	f := r.probe.NumBatchesTracked()
	for i, slot := range []int{dynDropU, dynDropBefore, dynDropAfter} {
		dyn[slot] = nn.IndexBits(uint32(f + int64(i) + 1))
	}
	dyn[dynSample] = nn.IndexBits(uint32(step))
	dyn[dynAdamStudent], dyn[dynAdamStudent+1] = r.opt.Scalars(1)
	dyn[dynAdamTeacher], dyn[dynAdamTeacher+1] = r.opt.Scalars(2)
	if r.res != nil {
		r.be.Upload(r.stepIn, h[:r.offX])
		return
	}
	data.Gather(h[r.offX:r.offX+n*d], r.feat, d, uRows)
	data.Gather(h[r.offXL:r.offXL+nl*d], r.feat, d, lRows)
	r.be.Upload(r.stepIn, h)
}

func argmax(row []float32) int {
	best := 0
	for k, x := range row {
		if x > row[best] {
			best = k
		}
	}
	return best
}
