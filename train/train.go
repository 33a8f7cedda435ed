package train

import (
	"fmt"

	"mct/data"
)

// Accuracies of every view and of their ensemble (sum of logits) on one split.
type Accuracies struct {
	Ensemble float64            `json:"ensemble"`
	PerView  map[string]float64 `json:"per_view"`
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

// trainSupervised trains this view's probe from its current weights on the labeled rows
// idx (labels from label), with early stopping on validation accuracy and restore-best,
// and ReduceLROnPlateau. Views train independently: no peer communication, and so no
// agreement on when to stop: a stop signal is handled after warmup, at the MCT phase's
// first update (warmup takes seconds).
func (r *rank) trainSupervised(idx []int, label func(row int) int32, stream uint64) ([]epochRecord, error) {
	r.newAdam(r.cfg.LR)
	sched := newPlateau(r.cfg.LR, 0.5, max(r.cfg.Patience/2, 1))
	batch := min(r.labeledBatch(), len(idx))
	s := data.NewSampler(idx, batch, r.cfg.Seed^stream)
	steps := (len(idx) + batch - 1) / batch
	var hist []epochRecord
	best, bad := -1.0, 0
	var bestState []byte
	for epoch := 0; epoch < r.cfg.WarmupEpochs; epoch++ {
		var loss float64
		for i := 0; i < steps; i++ {
			loss += r.supervisedUpdate(s.Next(), label)
		}
		val := r.valAccuracy()
		hist = append(hist, epochRecord{Loss: loss / float64(steps), ValAcc: val, LR: float64(r.opt.LR)})
		r.opt.LR = sched.observe(val)
		if val > best {
			best, bad = val, 0
			st, err := r.probe.SaveState()
			if err != nil {
				return hist, err
			}
			bestState = st
		} else if bad++; bad >= r.cfg.Patience {
			break
		}
	}
	if err := r.probe.LoadState(bestState); err != nil {
		return hist, fmt.Errorf("restore the best probe: %w", err)
	}
	return hist, nil
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
