package train

import (
	"encoding/json"
	"errors"
	"fmt"

	"mct/ckpt"
	"mct/ranks"
)

// A run checkpoints in one of three phases; the checkpoint's "run" section says which.
const (
	phaseSupervised = "supervised" // MCT's warmup, or the whole of --algo supervised
	phaseCotrain    = "cotrain"
	phaseMCT        = "mct"
)

// stateVersion is the layout of the "run" section. Version 1 was a section named "state"
// that held the MCT phase's state alone; 2 names the phase, so that the supervised and
// co-training phases can be checkpointed too. The section was renamed with the change so
// that an mct of version 1, which would read the new layout as an MCT state of zeros,
// finds no state and fails instead.
const stateVersion = 2

// savedState is a checkpoint's "run" section (JSON): where the run stands. Besides it, a
// checkpoint holds the sections "probe" (weights, BatchNorm statistics, dropout's step),
// "adam" (moments, step, learning rate) and "best" (the probe that early stopping restores).
type savedState struct {
	Version int    `json:"version"`
	Phase   string `json:"phase"`
	// Metrics is the length of metrics.jsonl when the checkpoint was written: a resumed run
	// keeps the records up to there and appends its own.
	Metrics    int64         `json:"metrics_bytes"`
	Supervised *supState     `json:"supervised,omitempty"`
	Cotrain    *cotrainState `json:"cotrain,omitempty"`
	MCT        *mctState     `json:"mct,omitempty"`
}

// checkpoint writes this rank's state at step (its number in the checkpoint store, agreed
// by every rank) and, once every rank has written, commits the step (rank 0). Collective
// over the world.
func (r *rank) checkpoint(step int64, epoch int, st *savedState, best []byte) error {
	st.Version = stateVersion
	n := []int64{r.metricsBytes()} // rank 0's, so that every replica's file says the same
	r.world.AllreduceI64(n, ranks.Max)
	st.Metrics = n[0]
	// Every error goes through allOK: a rank that returned alone would leave the others
	// waiting in it.
	state, err := json.Marshal(st)
	diverged := err != nil
	if diverged {
		// JSON refuses only NaN and infinities, which the state holds as losses and h.
		lr := "--lr"
		if st.Phase == phaseMCT {
			lr = "--mct-lr"
		}
		err = fmt.Errorf("the training diverged (a loss or h is NaN or infinite): lower %s", lr)
	}
	var probe, adam []byte
	if err == nil {
		probe, err = r.probe.SaveState()
	}
	if err == nil {
		adam, err = r.opt.SaveState()
	}
	h := ckpt.Header{RunID: r.cfg.RunID(), View: r.view, Replica: r.replica, Rank: r.world.Rank(),
		World: r.world.Size(), Step: step, Epoch: epoch}
	if err == nil {
		err = ckpt.Save(r.cfg.Out, h, map[string][]byte{"run": state, "probe": probe, "adam": adam, "best": best})
	}
	if !r.allOK(err) {
		if diverged { // the training's fault, not the checkpoint's
			return orOther(err)
		}
		return fmt.Errorf("checkpoint of step %d (%s): %w", step, st.Phase, orOther(err))
	}
	if r.world.Rank() == 0 {
		err = ckpt.Commit(r.cfg.Out, h.Step, r.world.Size(), r.cfg.Keep)
	}
	if !r.allOK(err) {
		return fmt.Errorf("commit the checkpoint of step %d (%s): %w", step, st.Phase, orOther(err))
	}
	return nil
}

// resume loads the newest checkpoint that every rank can load, with the probe state in
// r.probe (a co-training checkpoint's after a fresh probe of its round). It returns a nil
// state when the run directory holds no committed checkpoint yet (the run starts from the
// beginning).
func (r *rank) resume() (st *savedState, adam, best []byte, err error) {
	runID := r.cfg.RunID()
	h, _, err := ckpt.LatestForView(r.cfg.Out, r.view, runID)
	step := []int64{h.Step}
	switch {
	case errors.Is(err, ckpt.ErrNoCheckpoint):
		step[0], err = -1, nil
	case err != nil:
		step[0] = -2
	}
	// Ranks may have fallen back to different steps (a damaged newest file): take the
	// oldest, which every rank has.
	r.world.AllreduceI64(step, ranks.Min)
	switch {
	case step[0] == -2:
		return nil, nil, nil, orOther(err)
	case step[0] == -1:
		return nil, nil, nil, nil
	}
	_, sec, err := ckpt.LoadForView(r.cfg.Out, step[0], r.view, runID)
	if r.allOK(err) {
		st, err = r.decodeState(sec, step[0])
		if err == nil && st.Phase == phaseCotrain {
			err = r.reset(uint64(st.Cotrain.Round))
		}
		if err == nil {
			err = r.probe.LoadState(sec["probe"])
		}
	}
	if !r.allOK(err) {
		return nil, nil, nil, fmt.Errorf("resume from step %d: %w", step[0], orOther(err))
	}
	return st, sec["adam"], sec["best"], nil
}

// decodeState reads the "run" section of a checkpoint's sections and checks that it is
// of this layout and of a phase that this run's algorithm has.
func (r *rank) decodeState(sec map[string][]byte, step int64) (*savedState, error) {
	where := fmt.Sprintf("checkpoint step-%d in %s/ckpt", step, r.cfg.Out)
	st := &savedState{Version: 1} // a file without a "run" section has the layout of version 1
	if b, ok := sec["run"]; ok {
		st = new(savedState)
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("%s: run section: %w", where, err)
		}
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s: state layout version %d, this mct reads version %d: finish the run with the mct that wrote it, or start it again with a new --out",
			where, st.Version, stateVersion)
	}
	ok := false
	switch st.Phase {
	case phaseSupervised:
		ok = st.Supervised != nil && r.cfg.Algo != "cotrain"
	case phaseCotrain:
		ok = st.Cotrain != nil && st.Cotrain.Train != nil && r.cfg.Algo == "cotrain"
	case phaseMCT:
		ok = st.MCT != nil && r.cfg.Meta()
	}
	if !ok {
		return nil, fmt.Errorf("%s: state of phase %q does not fit --algo %s: the file is not this run's", where, st.Phase, r.cfg.Algo)
	}
	return st, nil
}

// metricsBytes is the length of metrics.jsonl so far on rank 0, and 0 on the other ranks
// (which write none).
func (r *rank) metricsBytes() int64 {
	if r.metricsLen == nil {
		return 0
	}
	return r.metricsLen()
}

// allOK (and r0OK before a rank exists) tells every rank whether all ranks succeeded, so
// that they fail together instead of some waiting forever in the next collective.
func (r *rank) allOK(err error) bool { return r0OK(r.world, err) }

func r0OK(world ranks.Comm, err error) bool {
	bad := []int64{0}
	if err != nil {
		bad[0] = 1
	}
	world.AllreduceI64(bad, ranks.Max)
	return bad[0] == 0
}

// errOtherRank is the error of a rank that did not fail itself when another did.
var errOtherRank = errors.New("another rank failed (see its message)")

// agreedError marks an error that every rank of the job returns from the same point (after
// allOK, or from a check every rank makes alike), so that Run can meet the other ranks once
// more and have the first real reason told once, not once per rank beside "another rank
// failed".
type agreedError struct{ err error }

func (e agreedError) Error() string { return e.err.Error() }
func (e agreedError) Unwrap() error { return e.err }

// orOther is err, or errOtherRank when this rank did not fail itself, marked agreed: call
// it only where allOK (or r0OK) has just told every rank that some rank failed.
func orOther(err error) error {
	if err == nil {
		err = errOtherRank
	}
	return agreedError{err}
}
