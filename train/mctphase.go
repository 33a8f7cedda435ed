package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"mct/data"
	"mct/ranks"
)

// mctEpoch summarises one MCT epoch, identical on every rank except PseudoAcc,
// PseudoKnown and Agreement: those are measured on each replica's own rows of the
// batches (the same on its peers), so with replicas metrics.jsonl (rank 0) has replica 0's.
type mctEpoch struct {
	Epoch   int       `json:"epoch"`
	Updates int       `json:"updates"`
	H       []float64 `json:"h"` // mean meta-feedback per view
	// PseudoAcc is the pseudo-label accuracy per view over the unlabeled rows whose true
	// label is known (all of them for built-in data; none when every one is -1: then nil).
	// Within an epoch it holds the hit counts, PseudoKnown their denominator.
	PseudoAcc   []float64  `json:"pseudo_acc"`
	PseudoKnown int        `json:"pseudo_known"`
	Agreement   float64    `json:"agreement"`
	LossBefore  float64    `json:"loss_before"` // this view's labeled loss around its student steps
	LossAfter   float64    `json:"loss_after"`
	LR          float64    `json:"lr"`
	Val         Accuracies `json:"val_accuracy"`
}

// mctState is everything the MCT phase needs to continue exactly, besides the probe, its
// optimizer and the best probe so far (separate checkpoint sections).
type mctState struct {
	Epoch   int               `json:"epoch"` // completed epochs
	Step    int               `json:"step"`  // updates done in the current epoch
	Updates int               `json:"updates"`
	U       data.SamplerState `json:"unlabeled_sampler"`
	L       data.SamplerState `json:"labeled_sampler"`
	Sched   plateau           `json:"scheduler"`
	Best    float64           `json:"best"`
	Bad     int               `json:"bad"`
	Partial mctEpoch          `json:"partial"` // running sums of the current epoch
	Records []mctEpoch        `json:"records"`
	Seconds float64           `json:"seconds"` // time spent in the phase before this process

	WarmupVal  Accuracies           `json:"warmup_val"`
	WarmupTest Accuracies           `json:"warmup_test"`
	Warmup     map[string][]float64 `json:"warmup_curves"`
}

// ErrStopped reports that the run stopped on a signal (SIGTERM, SIGUSR1) after committing
// a checkpoint: the run continues with --resume.
var ErrStopped = errors.New("stopped by a signal")

// agree tells every rank, at a boundary (an epoch of the supervised or co-training phase,
// an MCT update), whether any rank has been told to stop, so that all ranks stop at the
// same boundary (a signal reaches MPI ranks at slightly different times), and whether any
// rank still trains (views early-stop at different epochs; those done wait at the
// boundaries of the others, so that all ranks pass the same boundaries), and whether any
// rank's training diverged (then every rank ends it there). One Allreduce.
func (r *rank) agree(ctx context.Context, training, diverged bool) (stop, anyTraining, anyDiverged bool) {
	flags := []int64{0, 0, 0}
	for i, b := range []bool{ctx.Err() != nil, training, diverged} {
		if b {
			flags[i] = 1
		}
	}
	r.world.AllreduceI64(flags, ranks.Max)
	return flags[0] != 0, flags[1] != 0, flags[2] != 0
}

// finiteStats reports whether an MCT update's losses and feedback are finite: once not,
// every later update would train on NaN weights.
func finiteStats(s stepStats) bool {
	for _, x := range append([]float64{s.LossBefore, s.LossAfter}, s.H...) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// saveMCT checkpoints the MCT phase at st.Updates.
func (r *rank) saveMCT(st *mctState, best []byte) error {
	st.Seconds = r.priorSeconds + time.Since(r.phaseStart).Seconds()
	return r.checkpoint(int64(st.Updates), st.Epoch, &savedState{Phase: phaseMCT, MCT: st}, best)
}

// mctSamplers are the MCT phase's batches of unlabeled and labeled rows of r.split, each
// its own stream of the run's seed (Bench and Updates draw the same ones).
func (r *rank) mctSamplers() (U, L *data.Sampler) {
	return data.NewSampler(r.split.Unlabeled, r.cfg.Batch, r.cfg.Seed^0x55),
		data.NewSampler(r.split.Labeled, r.labeledBatch(), r.cfg.Seed^0xaa)
}

// trainMCT runs the MCT phase from st (fresh after warmup, or loaded from a checkpoint):
// epochs of updates over the unlabeled set, validation of every view and the ensemble after
// each, restore-best on the ensemble's validation accuracy, ReduceLROnPlateau, checkpoints.
// The probe's best state so far is best (nil: the current weights).
func (r *rank) trainMCT(ctx context.Context, st *mctState, adam, best []byte, names []string,
	onEpoch func(mctEpoch), onStep func(done, total int)) error {
	cfg := r.cfg
	if adam != nil || r.opt == nil { // resuming; a fresh phase keeps the Adam Run checkpointed at update 0
		r.newAdam(cfg.MCTLR)
	}
	if adam != nil {
		if err := r.opt.LoadState(adam); err != nil {
			return fmt.Errorf("checkpoint optimizer: %w", err)
		}
	}
	r.opt.LR = st.Sched.LR
	U, L := r.mctSamplers()
	if err := restoreSampler(U, st.U); err != nil {
		return err
	}
	if err := restoreSampler(L, st.L); err != nil {
		return err
	}
	var err error
	if len(best) == 0 { // a fresh phase, or the checkpoint of its update 0
		if best, err = r.probe.SaveState(); err != nil {
			return err
		}
	}
	steps := (U.Len() + cfg.Batch - 1) / cfg.Batch
	save := func() error {
		st.U, st.L = U.State(), L.State()
		return r.saveMCT(st, best)
	}
	for st.Epoch < cfg.Epochs && st.Bad < cfg.Patience {
		rec := &st.Partial
		if st.Step == 0 {
			*rec = mctEpoch{Epoch: st.Epoch + 1, H: make([]float64, r.V), PseudoAcc: make([]float64, r.V), LR: float64(r.opt.LR)}
		}
		var diverged error // this rank's last update's, told at the next boundary, where every rank is
		for ; st.Step < steps; st.Step++ {
			stop, _, anyDiverged := r.agree(ctx, true, diverged != nil)
			if anyDiverged {
				return orOther(diverged)
			}
			if stop {
				if err := save(); err != nil {
					return err
				}
				return ErrStopped
			}
			s := r.mctUpdate(st.Updates, U.Next(), L.Next(), r.ds.TrainLabels)
			st.Updates++
			if !finiteStats(s) {
				diverged = fmt.Errorf("the training diverged in update %d (MCT epoch %d; a loss or h is NaN or infinite): lower --mct-lr (now %g)", st.Updates, st.Epoch+1, cfg.MCTLR)
			}
			for v := range rec.H {
				rec.H[v] += s.H[v] / float64(steps)
				rec.PseudoAcc[v] += s.PseudoHits[v]
			}
			rec.PseudoKnown += s.Known
			rec.Agreement += s.Agreement / float64(steps)
			rec.LossBefore += s.LossBefore / float64(steps)
			rec.LossAfter += s.LossAfter / float64(steps)
			onStep(st.Step+1, steps)
			if cfg.CheckpointEvery > 0 && st.Updates%cfg.CheckpointEvery == 0 && st.Step+1 < steps {
				st.Step++ // the checkpoint resumes after this update
				err := save()
				st.Step--
				if err != nil {
					return err
				}
			}
		}
		rec.Updates = st.Updates
		for v := range rec.PseudoAcc {
			if rec.PseudoKnown == 0 {
				rec.PseudoAcc = nil
				break
			}
			rec.PseudoAcc[v] /= float64(rec.PseudoKnown)
		}
		rec.Val = r.evaluate(r.split.Val, false, names)
		onEpoch(*rec)
		st.Records = append(st.Records, *rec)
		st.Epoch++
		st.Step = 0
		r.opt.LR = st.Sched.observe(rec.Val.Ensemble)
		if rec.Val.Ensemble > st.Best {
			st.Best, st.Bad = rec.Val.Ensemble, 0
			if best, err = r.probe.SaveState(); err != nil {
				return err
			}
		} else {
			st.Bad++
		}
		if err := save(); err != nil {
			return err
		}
	}
	if err := r.probe.LoadState(best); err != nil {
		return fmt.Errorf("restore the best probe: %w", err)
	}
	return nil
}
