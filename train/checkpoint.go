package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"mct/ckpt"
	"mct/ranks"
)

// checkpoint writes this rank's state of the MCT phase and, once every rank has written,
// commits the step (rank 0). Collective over the world.
func (r *rank) checkpoint(st *mctState, best []byte) error {
	st.Seconds = r.priorSeconds + time.Since(r.phaseStart).Seconds()
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	probe, err := r.probe.SaveState()
	if err != nil {
		return err
	}
	adam, err := r.opt.SaveState()
	if err != nil {
		return err
	}
	h := ckpt.Header{RunID: r.cfg.RunID(), View: r.view, Replica: r.replica, Rank: r.world.Rank(),
		World: r.world.Size(), Step: int64(st.Updates), Epoch: st.Epoch}
	err = ckpt.Save(r.cfg.Out, h, map[string][]byte{"state": state, "probe": probe, "adam": adam, "best": best})
	if !r.allOK(err) {
		return fmt.Errorf("checkpoint of update %d: %w", st.Updates, orOther(err))
	}
	if r.world.Rank() == 0 {
		err = ckpt.Commit(r.cfg.Out, h.Step, r.world.Size(), r.cfg.Keep)
	}
	if !r.allOK(err) {
		return fmt.Errorf("commit the checkpoint of update %d: %w", st.Updates, orOther(err))
	}
	return nil
}

// resume loads the newest checkpoint that every rank can load. It returns a nil state when
// the run directory holds no committed checkpoint yet (the run starts from the beginning).
func (r *rank) resume() (st *mctState, adam, best []byte, err error) {
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
		st = new(mctState)
		err = json.Unmarshal(sec["state"], st)
		if err == nil {
			err = r.probe.LoadState(sec["probe"])
		}
	}
	if !r.allOK(err) {
		return nil, nil, nil, fmt.Errorf("resume from update %d: %w", step[0], orOther(err))
	}
	return st, sec["adam"], sec["best"], nil
}

// allOK (and r0OK before a rank exists) tells every rank whether all ranks succeeded, so that they fail together instead
// of some waiting forever in the next collective.
func (r *rank) allOK(err error) bool { return r0OK(r.world, err) }

func r0OK(world ranks.Comm, err error) bool {
	bad := []int64{0}
	if err != nil {
		bad[0] = 1
	}
	world.AllreduceI64(bad, ranks.Max)
	return bad[0] == 0
}

// orOther is err, or the note that another rank failed (this one did not).
func orOther(err error) error {
	if err != nil {
		return err
	}
	return errors.New("another rank failed (see its message)")
}
