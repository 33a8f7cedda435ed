package train

import (
	"fmt"
	"hash/fnv"
	"os"
	"time"

	"mct/data"
	"mct/nn"
	"mct/ranks"
)

// rank is one replica of one view's probe: the model, its optimizer and the device
// buffers of its updates. One rank per goroutine (local transport) or per process (MPI).
type rank struct {
	cfg     Config
	ds      *data.Dataset // Views holds this rank's view (all views when they share a process)
	vd      data.View     // this rank's view
	split   data.Split
	world   ranks.Comm
	peer    ranks.Comm // same replica, all views; peer.Rank() == view
	pool    ranks.Comm // same view, all replicas; pool.Rank() == replica
	view    int
	replica int
	V, R    int
	dim, C  int
	feat    []float32 // this view's train features, row-major
	// res holds feat on the backend (resident, see resident): batches are then gathered
	// there by row index (GatherRows) and only the indices are uploaded. nil: batches
	// are gathered on the host and uploaded whole.
	res    nn.Buf
	rowIdx nn.Buf // the row indices of an upload through res (supervised steps, evaluation)

	be    nn.Backend
	probe *nn.Probe
	opt   *nn.Adam
	g     *nn.Grads // the gradient of the current optimizer step
	gs    *nn.Grads // the student gradient, kept for --exact-h

	tapeU *nn.Tape // teacher/student pass on the unlabeled batch; keeps its weights
	tapeX *nn.Tape // labeled batch
	tapeE *nn.Tape // evaluation chunks

	host     []float32 // staging for uploads and downloads
	gradHost []float32 // staging of the gradient all-reduce over replicas

	phaseStart   time.Time    // when this process started the MCT phase
	priorSeconds float64      // MCT-phase seconds of the processes before a resume
	metricsLen   func() int64 // rank 0: the length of metrics.jsonl, for checkpoints; nil elsewhere
	xL           nn.Buf       // rows of a supervised step or an evaluation chunk
	yL           nn.Buf       // labels of xL as float32

	// One MCT update's inputs, uploaded at once (uploadStep): stepIn holds, at the
	// offsets below, the views uKey (the unlabeled rows' indices, nn.IndexBits: their
	// sampling keys and, with res, their rows in it), lKey (the labeled rows' indices),
	// yLStep (the labeled rows' labels), uTruth (the unlabeled rows' true labels), the
	// per-update values of the dyn* slots (step.go), dynView[slot] viewing each, and
	// last, from offX, xU and xLStep (the unlabeled and labeled rows' features): with
	// res they are gathered on the device and only stepIn[:offX] is uploaded.
	stepIn                                        nn.Buf
	stepHost                                      []float32
	offLKey, offYL, offTruth, offDyn, offX, offXL int
	xU, xLStep, yLStep, uKey, lKey, uTruth        nn.Buf
	dynView                                       [dynLen]nn.Buf
	hScale                                        nn.Buf    // the teacher's feedback weights h_w/(V−1)/B
	hScaleHost                                    []float32 // and their host copy
	// rec records and replays the update's device-only segments (CUDA graphs); nil
	// when the backend cannot, with replicas (their all-reduces go through the host
	// inside the segments) and under MCT_CUDA_GRAPHS=0.
	rec      nn.Recorder
	warn     func(format string, args ...any) // rank 0's progress line (reporter.line); nil: silent
	scal     nn.Buf                           // the update's scalars (slot* in step.go)
	scalHost []float32                        // and their host copy
	dz       nn.Buf                           // output gradient
	loss     *nn.Loss                         // cross-entropy with reusable scratch (no allocation per step)
	zAll     nn.Buf                           // every view's logits on the unlabeled batch (V×n×C)
	mEns     nn.Buf                           // the other views' ensemble logits, per view (V×n×C)
	yHat     nn.Buf                           // pseudo-labels of every view (V×n)
	yArg     nn.Buf                           // every view's argmax on the unlabeled batch (V×n)
	// exchange says how the teacher logits reach the other views (exchange.go), with
	// what it needs: xchg (exchangeBackends), mpiDev and addr (exchangeMPIDevice).
	exchange string
	// exchangeNote, for rank 0 to print, warns of an MCT_CUDA_AWARE=1 the library denies.
	exchangeNote string
	xchg         *peerLogits
	mpiDev       ranks.AddrComm
	addr         nn.Addresser
}

// evalChunk bounds the rows of one evaluation forward pass.
const evalChunk = 2048

func newRank(cfg Config, ds *data.Dataset, split data.Split, be nn.Backend, world, peer, pool ranks.Comm) (*rank, error) {
	r := &rank{cfg: cfg, ds: ds, split: split, be: be, world: world, peer: peer, pool: pool,
		view: peer.Rank(), replica: pool.Rank(), V: peer.Size(), R: pool.Size(), C: ds.Classes}
	r.vd = ds.Views[0] // an MPI rank loads only its own view
	if len(ds.Views) > 1 {
		r.vd = ds.Views[cfg.ProbeView(r.view)]
	}
	v := r.vd
	r.dim, r.feat = v.Dim, v.Train
	if err := r.reset(0); err != nil {
		return nil, err
	}
	nU, nL := r.localCount(cfg.Batch), r.localCount(r.labeledBatch())
	maxRows := max(nU, nL, evalChunk)
	r.xL = be.Alloc(max(nL, evalChunk) * r.dim)
	if r.res = resident(be, r.feat); r.res != nil {
		r.rowIdx = be.Alloc(max(nL, evalChunk))
	}
	r.offLKey = nU
	r.offYL = r.offLKey + nL
	r.offTruth = r.offYL + nL
	r.offDyn = r.offTruth + nU
	r.offX = r.offDyn + dynLen
	r.offXL = r.offX + nU*r.dim
	r.stepHost = make([]float32, r.offXL+nL*r.dim)
	r.stepIn = be.Alloc(len(r.stepHost))
	for i := range r.dynView {
		r.dynView[i] = be.View(r.stepIn, r.offDyn+i, 1)
	}
	// Adam's two scalars are read as one operand.
	r.dynView[dynAdamStudent] = be.View(r.stepIn, r.offDyn+dynAdamStudent, 2)
	r.dynView[dynAdamTeacher] = be.View(r.stepIn, r.offDyn+dynAdamTeacher, 2)
	r.hScaleHost = make([]float32, r.V)
	r.hScale = be.Alloc(r.V)
	if rec, ok := be.(nn.Recorder); ok && r.R == 1 && os.Getenv("MCT_CUDA_GRAPHS") != "0" {
		r.rec = rec
	}
	r.xU, r.xLStep = be.View(r.stepIn, r.offX, nU*r.dim), be.View(r.stepIn, r.offXL, nL*r.dim)
	r.uKey, r.lKey = be.View(r.stepIn, 0, nU), be.View(r.stepIn, r.offLKey, nL)
	r.yLStep, r.uTruth = be.View(r.stepIn, r.offYL, nL), be.View(r.stepIn, r.offTruth, nU)
	r.scalHost = make([]float32, scalars(r.V))
	r.scal = be.Alloc(len(r.scalHost))
	r.yL, r.dz = be.Alloc(max(nL, evalChunk)), be.Alloc(maxRows*r.C)
	r.zAll, r.mEns = be.Alloc(r.V*nU*r.C), be.Alloc(r.V*nU*r.C)
	r.yHat, r.yArg = be.Alloc(r.V*nU), be.Alloc(r.V*nU)
	r.chooseExchange()
	hostLen := maxRows * r.dim
	if r.exchange == exchangeHost { // the all-gathered logits pass through r.host
		hostLen = max(hostLen, r.V*nU*r.C)
	}
	r.host = make([]float32, hostLen)
	r.loss = nn.NewLoss(be, maxRows)
	return r, nil
}

// reset gives this rank a freshly initialised probe (co-training retrains from scratch
// each round); round 0 is the run's initialisation.
func (r *rank) reset(round uint64) error {
	cfg := r.cfg
	pc := nn.Config{Arch: cfg.Arch, In: r.dim, Classes: r.C, Hidden: cfg.Hidden, Slope: 0.01,
		Temperature: cfg.Temperature, Dropout: cfg.Dropout, BNMomentum: 0.1, BNEps: 1e-5}
	if r.probe != nil {
		// Co-training's rounds: the old probe's memory goes back to the backend, whose
		// cache hands it to the new one's allocations of the same sizes.
		if r.opt != nil {
			r.opt.Free()
			r.opt = nil
		}
		for _, t := range []*nn.Tape{r.tapeU, r.tapeX, r.tapeE} {
			t.Free()
		}
		r.g.Free()
		r.gs.Free()
		r.probe.Free()
		r.probe = nil
	}
	p, err := nn.NewProbe(r.be, pc, r.probeSeed()+round)
	if err != nil {
		return fmt.Errorf("view %s: %w", r.vd.Name, err)
	}
	if r.R > 1 {
		// BatchNorm sees the whole global batch: replicas add their column sums.
		p.Reduce = r.pool.AllreduceF32
	}
	r.probe = p
	r.g, r.gs = p.NewGrads(), p.NewGrads()
	nU, nL := r.localCount(cfg.Batch), r.localCount(r.labeledBatch())
	r.tapeU = p.NewTape(nU, true)
	r.tapeX = p.NewTape(nL, false)
	r.tapeE = p.NewTape(evalChunk, false)
	return nil
}

// newAdam gives the probe a fresh Adam at lr, releasing the previous optimizer's moments.
func (r *rank) newAdam(lr float32) {
	if r.opt != nil {
		r.opt.Free()
	}
	r.opt = nn.NewAdam(r.probe, lr)
}

// probeSeed gives every probe its own initialisation (MPL's two on one view too) and every
// replica of a probe the same.
func (r *rank) probeSeed() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "probe/%d/%s%s", r.cfg.Seed, r.vd.Name, probeSuffix(r.cfg, r.view))
	return h.Sum64()
}

func (r *rank) labeledBatch() int { return labeledBatch(r.cfg, len(r.split.Labeled)) }

// labeledBatch is the labeled batch of cfg over a labeled set of n examples.
func labeledBatch(cfg Config, n int) int {
	if cfg.LabeledBatch > 0 {
		return min(cfg.LabeledBatch, n)
	}
	return min(cfg.Batch, n)
}

// localCount is how many rows of a global batch of n this replica holds.
func (r *rank) localCount(n int) int {
	lo, hi := r.localRange(n)
	return hi - lo
}

// localRange is this replica's slice of a global batch of n rows: replicas split it in
// contiguous blocks, the first n mod R replicas taking one row more.
func (r *rank) localRange(n int) (lo, hi int) {
	q, m := n/r.R, n%r.R
	lo = r.replica*q + min(r.replica, m)
	hi = lo + q
	if r.replica < m {
		hi++
	}
	return lo, hi
}

// residentShare is the largest fraction of a device's free memory (when the rank starts)
// that its view's training features may take to be kept there: the rest is left to the
// model, its tapes and buffers, and to other ranks placed on the same GPU.
const residentShare = 0.5

// resident returns feat on be, for gathering batches there (GatherRows): on a backend
// whose memory is the host's (nn.Adopter: the CPU), feat itself, not a copy; on a device
// that reports its memory (cudaops: MemInfo), a copy when feat takes at most
// residentShare of the free memory. nil when it does not fit, when the device cannot
// say, and under MCT_RESIDENT=0 (the host gathers each batch and uploads its rows).
func resident(be nn.Backend, feat []float32) nn.Buf {
	if os.Getenv("MCT_RESIDENT") == "0" || len(feat) == 0 {
		return nil
	}
	if a, ok := be.(nn.Adopter); ok {
		return a.Adopt(feat)
	}
	m, ok := be.(interface {
		MemInfo() (free, total int64, err error)
	})
	if !ok {
		return nil
	}
	free, _, err := m.MemInfo()
	if err != nil || float64(4*len(feat)) > residentShare*float64(free) {
		return nil
	}
	buf := be.Alloc(len(feat))
	be.Upload(buf, feat)
	return buf
}

// upload puts this view's features of rows into buf: with resident features the row
// indices are uploaded and the rows gathered on the device; otherwise they are gathered
// here and uploaded.
func (r *rank) upload(buf nn.Buf, rows []int) {
	if r.res != nil {
		h := r.host[:len(rows)]
		for i, e := range rows {
			h[i] = nn.IndexBits(uint32(e))
		}
		r.be.Upload(r.rowIdx, h)
		r.be.GatherRows(buf, r.res, r.dim, r.rowIdx, len(rows))
		return
	}
	h := r.host[:len(rows)*r.dim]
	data.Gather(h, r.feat, r.dim, rows)
	r.be.Upload(buf, h)
}

// uploadLabels writes labels[i] of rows as float32 class indices into buf.
func (r *rank) uploadLabels(buf nn.Buf, rows []int, labels func(i int) int32) {
	h := r.host[:len(rows)]
	for i := range rows {
		h[i] = float32(labels(i))
	}
	r.be.Upload(buf, h)
}

// poolSum adds a gradient over the replicas of this view (a no-op for one replica).
func (r *rank) poolSum(g *nn.Grads) {
	if r.R == 1 {
		return
	}
	if len(r.gradHost) != g.Len() {
		r.gradHost = make([]float32, g.Len())
	}
	g.Download(r.gradHost)
	r.pool.AllreduceF32(r.gradHost)
	g.Upload(r.gradHost)
}

// poolMean averages scalars over the replicas (losses computed on their rows, weighted
// by the rows each replica holds).
func (r *rank) poolMean(vals []float64, weight float64) {
	if r.R == 1 {
		return
	}
	buf := make([]float64, len(vals)+1)
	for i, v := range vals {
		buf[i] = v * weight
	}
	buf[len(vals)] = weight
	r.pool.AllreduceF64(buf)
	for i := range vals {
		vals[i] = buf[i] / buf[len(vals)]
	}
}

// step applies one optimizer step with the gradient in r.g: sum over replicas, clip
// unless clip is 0 (on the device, without reading the norm back; Adam applies the
// factor as it reads r.g, which stays unclipped), Adam. With sched, Adam reads its
// per-step scalars from there (the MCT update's, uploaded with its batch).
func (r *rank) step(clip float32, sched nn.Buf) {
	r.poolSum(r.g)
	r.opt.StepClipped(r.g, clip, sched)
}

// supervisedUpdate does one step of plain supervised training on a global labeled batch.
func (r *rank) supervisedUpdate(rows []int, labels func(row int) int32) float64 {
	lo, hi := r.localRange(len(rows))
	local := rows[lo:hi]
	r.upload(r.xL, local)
	r.uploadLabels(r.yL, local, func(i int) int32 { return labels(local[i]) })
	n := len(local)
	r.probe.DropoutRowBase = uint32(lo) // replicas draw their own rows' dropout masks
	z := r.probe.Forward(r.tapeX, r.xL, n, nn.Train)
	loss := float64(r.loss.CrossEntropy(z, n, r.C, r.yL, r.dz, float32(n)/float32(len(rows))))
	r.g.Zero()
	r.probe.Backward(r.tapeX, r.dz, r.g)
	r.step(0, nil)
	l := []float64{loss}
	r.poolMean(l, float64(n))
	return l[0]
}

// logits runs the probe in eval mode over rows of this view's features (train split)
// or of the test split, and returns them row-major (len(rows)×C).
func (r *rank) logits(rows []int, test bool) []float32 {
	out := make([]float32, len(rows)*r.C)
	for lo := 0; lo < len(rows); lo += evalChunk {
		chunk := rows[lo:min(lo+evalChunk, len(rows))]
		if test {
			h := r.host[:len(chunk)*r.dim]
			data.Gather(h, r.vd.Test, r.dim, chunk)
			r.be.Upload(r.xL, h)
		} else {
			r.upload(r.xL, chunk)
		}
		z := r.probe.Forward(r.tapeE, r.xL, len(chunk), nn.Eval)
		r.be.Download(out[lo*r.C:(lo+len(chunk))*r.C], z)
	}
	return out
}
