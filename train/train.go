package train

import (
	"context"
	"fmt"
	"math"

	"mct/data"
)

// Accuracies of every view and of their ensemble (sum of logits) on one split, and how
// alike the views' errors are there.
type Accuracies struct {
	Ensemble     float64            `json:"ensemble"`
	PerView      map[string]float64 `json:"per_view"`
	SharedErrors []SharedErrors     `json:"shared_errors,omitempty"` // every pair of views
}

// evaluate runs every view on rows (of train, or of test) and returns each view's and the
// ensemble's accuracy; collective over the peers, identical on every rank.
func (r *rank) evaluate(rows []int, test bool, names []string) Accuracies {
	labels := r.ds.TrainLabels
	if test {
		labels = r.ds.TestLabels
	}
	z := r.logits(rows, test)
	all := make([]float32, r.V*len(z))
	r.peer.AllgatherF32(z, all)
	p := Predictions{Views: names, Labels: make([]int32, len(rows)), Classes: r.C}
	for i, e := range rows {
		p.Labels[i] = labels[e]
	}
	for v := range r.V {
		p.Logits = append(p.Logits, all[v*len(z):(v+1)*len(z)])
	}
	return p.Accuracy()
}

// valAccuracy is this view's accuracy on the validation slice (no communication).
func (r *rank) valAccuracy() float64 {
	z := r.logits(r.split.Val, false)
	var c int
	for i, e := range r.split.Val {
		if argmax(z[i*r.C:(i+1)*r.C]) == int(r.ds.TrainLabels[e]) {
			c++
		}
	}
	return float64(c) / float64(len(r.split.Val))
}

// epochRecord is one supervised epoch of one view, for metrics.jsonl.
type epochRecord struct {
	Loss, ValAcc, LR float64
}

// supState is where one view's supervised training stands: with the probe, its optimizer
// and the best probe so far (separate checkpoint sections), everything it needs to
// continue exactly.
type supState struct {
	// Tick counts the epoch boundaries passed, the same on every rank: views that stopped
	// early pass the boundaries of those still training.
	Tick    int               `json:"tick"`
	Epoch   int               `json:"epoch"` // epochs this view trained
	Done    bool              `json:"done"`  // out of epochs or of patience
	Sampler data.SamplerState `json:"sampler"`
	Sched   plateau           `json:"scheduler"`
	Best    float64           `json:"best"` // best validation accuracy so far
	Bad     int               `json:"bad"`  // epochs since it improved
	Hist    []epochRecord     `json:"history"`
	Seconds float64           `json:"seconds"` // time spent in the phase before this process
}

// trainSupervised trains this view's probe from its current weights on the labeled rows
// idx (labels from label), with early stopping on validation accuracy and restore-best,
// and ReduceLROnPlateau. It continues st when resuming (with the optimizer state adam and
// the best probe best; the probe is already restored), or starts afresh when st is nil.
// Views train independently, but every rank checks for a stop request at each epoch
// boundary (a collective): on one, save checkpoints the state and trainSupervised returns
// ErrStopped. It returns the final state, whose Hist is the epochs trained.
func (r *rank) trainSupervised(ctx context.Context, idx []int, label func(row int) int32, stream uint64,
	st *supState, adam, best []byte, save func(st *supState, best []byte) error, onEpoch func(epoch int, val float64)) (*supState, error) {
	cfg := r.cfg
	r.newAdam(cfg.LR)
	if st == nil {
		st = &supState{Sched: *newPlateau(cfg.LR, 0.5, max(cfg.Patience/2, 1)), Best: -1}
	} else if err := r.opt.LoadState(adam); err != nil {
		return nil, fmt.Errorf("checkpoint optimizer: %w", err)
	}
	batch := min(r.labeledBatch(), len(idx))
	s := data.NewSampler(idx, batch, cfg.Seed^stream)
	if err := restoreSampler(s, st.Sampler); err != nil {
		return nil, err
	}
	steps := (len(idx) + batch - 1) / batch
	var diverged error // this view's
	for {
		// A view that diverged ends the training of every view at once: the run cannot
		// succeed, and the others' remaining epochs (a long warmup) would only delay that.
		stop, training, anyDiverged := r.agree(ctx, !st.Done, diverged != nil)
		if anyDiverged {
			return nil, orOther(diverged)
		}
		if !training {
			break
		}
		if stop {
			st.Sampler = s.State()
			if err := save(st, best); err != nil {
				return nil, err
			}
			return nil, ErrStopped
		}
		st.Tick++
		if st.Done {
			continue
		}
		var loss float64
		for i := 0; i < steps; i++ {
			loss += r.supervisedUpdate(s.Next(), label)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			// Later epochs could only train NaN weights.
			diverged = fmt.Errorf("view %s diverged in epoch %d of %s training (mean loss %v): lower --lr (now %g)",
				cfg.Probes()[r.view], st.Epoch+1, supervisedName(cfg), loss/float64(steps), cfg.LR)
			st.Done = true
			continue
		}
		val := r.valAccuracy()
		st.Hist = append(st.Hist, epochRecord{Loss: loss / float64(steps), ValAcc: val, LR: float64(r.opt.LR)})
		st.Epoch++
		if onEpoch != nil {
			onEpoch(st.Epoch, val)
		}
		r.opt.LR = st.Sched.observe(val)
		if val > st.Best {
			st.Best, st.Bad = val, 0
			var err error
			if best, err = r.probe.SaveState(); err != nil {
				return nil, err
			}
		} else {
			st.Bad++
		}
		st.Done = st.Epoch >= cfg.WarmupEpochs || st.Bad >= cfg.Patience
	}
	err := r.probe.LoadState(best)
	if err != nil {
		// The state SaveState wrote is refused only for a NaN or an infinity: the weights or
		// the BatchNorm statistics overflowed while the mean loss stayed finite.
		err = fmt.Errorf("view %s diverged in %s training (its best probe: %v): lower --lr (now %g)",
			cfg.Probes()[r.view], supervisedName(cfg), err, cfg.LR)
	}
	if !r.allOK(err) {
		return nil, orOther(err)
	}
	return st, nil
}

// restoreSampler moves s to the position st of a checkpoint, or says that st does not
// fit s (Restore panics on that): the checkpoint is damaged, or its run's data had other
// rows (a dataset directory rebuilt under the same path).
func restoreSampler(s *data.Sampler, st data.SamplerState) error {
	if st.Epoch < 0 || st.Pos < 0 || st.Pos > s.Len() {
		return fmt.Errorf("checkpoint: sampler position %+v does not fit the %d examples it draws from: the checkpoint is damaged or not this run's", st, s.Len())
	}
	s.Restore(st)
	return nil
}

// plateau is ReduceLROnPlateau in "max" mode (PyTorch semantics, threshold 0): after
// patience observations without improvement the learning rate is multiplied by factor.
// Its fields are exported for checkpoints.
type plateau struct {
	LR, Factor, Best float32
	Patience, Bad    int
}

func newPlateau(lr, factor float32, patience int) *plateau {
	return &plateau{LR: lr, Factor: factor, Best: -1, Patience: patience}
}

func (p *plateau) observe(metric float64) float32 {
	if float32(metric) > p.Best {
		p.Best, p.Bad = float32(metric), 0
	} else if p.Bad++; p.Bad > p.Patience {
		p.LR *= p.Factor
		p.Bad = 0
	}
	return p.LR
}
