package train

import (
	"context"
	"fmt"

	"mct/data"
	"mct/nn"
)

// mctEpoch summarises one MCT epoch, identical on every rank.
type mctEpoch struct {
	Epoch      int        `json:"epoch"`
	Updates    int        `json:"updates"`
	H          []float64  `json:"h"`          // mean meta-feedback per view
	PseudoAcc  []float64  `json:"pseudo_acc"` // pseudo-label accuracy per view (true labels of U)
	Agreement  float64    `json:"agreement"`
	LossBefore float64    `json:"loss_before"` // this view's labeled loss around its student steps
	LossAfter  float64    `json:"loss_after"`
	LR         float64    `json:"lr"`
	Val        accuracies `json:"val_accuracy"`
}

// trainMCT runs the MCT phase from the current (warmed-up) weights: epochs of updates over
// the unlabeled set, validation of every view and the ensemble after each, restore-best on
// the ensemble's validation accuracy, ReduceLROnPlateau. onEpoch sees each epoch's record.
func (r *rank) trainMCT(ctx context.Context, names []string, onEpoch func(mctEpoch), onStep func(done, total int)) (updates int, err error) {
	cfg := r.cfg
	r.opt = nn.NewAdam(r.probe, cfg.MCTLR)
	sched := newPlateau(cfg.MCTLR, 0.5, max(cfg.Patience/2, 1))
	U := data.NewSampler(r.split.Unlabeled, cfg.Batch, cfg.Seed^0x55)
	L := data.NewSampler(r.split.Labeled, r.labeledBatch(), cfg.Seed^0xaa)
	steps := (U.Len() + cfg.Batch - 1) / cfg.Batch
	best := r.evaluate(r.split.Val, false, names).Ensemble
	bestState, err := r.probe.SaveState()
	if err != nil {
		return 0, err
	}
	bad := 0
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		rec := mctEpoch{Epoch: epoch, H: make([]float64, r.V), PseudoAcc: make([]float64, r.V), LR: float64(r.opt.LR)}
		for s := 0; s < steps; s++ {
			if err := ctx.Err(); err != nil {
				return updates, err
			}
			st := r.mctUpdate(updates, U.Next(), L.Next(), r.ds.TrainLabels)
			updates++
			onStep(s+1, steps)
			for v := range rec.H {
				rec.H[v] += st.H[v] / float64(steps)
				rec.PseudoAcc[v] += st.PseudoAcc[v] / float64(steps)
			}
			rec.Agreement += st.Agreement / float64(steps)
			rec.LossBefore += st.LossBefore / float64(steps)
			rec.LossAfter += st.LossAfter / float64(steps)
		}
		rec.Updates = updates
		rec.Val = r.evaluate(r.split.Val, false, names)
		onEpoch(rec)
		r.opt.LR = sched.observe(rec.Val.Ensemble)
		if rec.Val.Ensemble > best {
			best, bad = rec.Val.Ensemble, 0
			if bestState, err = r.probe.SaveState(); err != nil {
				return updates, err
			}
		} else if bad++; bad >= cfg.Patience {
			break
		}
	}
	if err := r.probe.LoadState(bestState); err != nil {
		return updates, fmt.Errorf("restore the best probe: %w", err)
	}
	return updates, nil
}
