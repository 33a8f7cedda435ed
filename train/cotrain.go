package train

import (
	"context"
	"maps"
	"math"
	"slices"
	"sort"

	"mct/data"
)

// cotrainRound is one co-training round, for metrics.jsonl.
type cotrainRound struct {
	Round    int        `json:"round"`
	Labeled  []int      `json:"labeled"`   // labeled-set size per view after the round
	Added    int        `json:"added"`     // examples moved out of the pool this round
	AddedAcc float64    `json:"added_acc"` // accuracy of their labels, over those whose true label is known
	Val      Accuracies `json:"val_accuracy"`
}

// cotrainState is where co-training stands, for checkpoints: the round, what the rounds
// before it moved out of the pool, and the round's training.
type cotrainState struct {
	Round int `json:"round"`
	Ticks int `json:"ticks"` // epoch boundaries passed in the rounds before this one
	// Taken lists the examples moved out of the pool by earlier rounds; AddedRows and
	// AddedLabels the ones of them that joined this view's labeled set, with their labels.
	Taken       []int     `json:"taken"`
	AddedRows   []int     `json:"added_rows"`
	AddedLabels []int32   `json:"added_labels"`
	Train       *supState `json:"training"`
}

// cotrain is the co-training baseline (Blum & Mitchell, for V deep views): rounds of —
// train every view from scratch on its labeled set; each view labels the pool and its k
// most confident examples per class move into the labeled sets of the other views — until
// the pool or the round budget ends. It starts from a zero cs, or continues one from a
// checkpoint (with adam and best, the optimizer state and best probe of its round's
// training; the probe is restored), and keeps cs up to date. A stop request is honoured at
// the epoch boundaries of a round's training, the first of which comes after the previous
// round's exchange: the state is checkpointed and cotrain returns ErrStopped.
func (r *rank) cotrain(ctx context.Context, names []string, cs *cotrainState, adam, best []byte,
	onRound func(cotrainRound)) error {
	k := r.cfg.CotrainK
	labels := map[int]int32{} // this view's labeled set: example → label
	for _, e := range r.split.Labeled {
		labels[e] = r.ds.TrainLabels[e]
	}
	for i, e := range cs.AddedRows {
		labels[e] = cs.AddedLabels[i]
	}
	taken := map[int]bool{}
	for _, e := range cs.Taken {
		taken[e] = true
	}
	pool := slices.DeleteFunc(slices.Clone(r.split.Unlabeled), func(e int) bool { return taken[e] })
	save := func(s *supState, best []byte) error {
		cs.Train = s
		return r.checkpoint(int64(cs.Ticks+s.Tick), s.Epoch, &savedState{Phase: phaseCotrain, Cotrain: cs}, best)
	}
	for ; ; cs.Round++ {
		if cs.Train == nil { // not the round a checkpoint resumes, whose probe is restored
			if err := r.reset(uint64(cs.Round)); err != nil {
				return err
			}
		}
		idx := slices.Sorted(maps.Keys(labels))
		sup, err := r.trainSupervised(ctx, idx, func(e int) int32 { return labels[e] }, uint64(cs.Round)<<8, cs.Train, adam, best, save, nil)
		if err != nil {
			return err
		}
		cs.Ticks += sup.Tick
		cs.Train, adam, best = nil, nil, nil
		if cs.Round == r.cfg.CotrainRounds || len(pool) == 0 {
			return nil
		}
		// Every view proposes its k most confident examples per class; all proposals
		// are exchanged as fixed-size (example, label) lists, -1 padded.
		mine := r.mostConfident(pool, k)
		all := make([]int64, r.V*len(mine))
		r.peer.AllgatherI64(mine, all)
		var added, right, unknown int
		for v := 0; v < r.V; v++ {
			for i := 0; i < len(mine); i += 2 {
				e, y := all[v*len(mine)+i], all[v*len(mine)+i+1]
				if e < 0 || taken[int(e)] {
					continue
				}
				taken[int(e)] = true
				cs.Taken = append(cs.Taken, int(e))
				added++
				if truth := r.ds.TrainLabels[e]; truth == data.Unknown {
					unknown++
				} else if int32(y) == truth {
					right++
				}
				if v != r.view {
					labels[int(e)] = int32(y)
					cs.AddedRows, cs.AddedLabels = append(cs.AddedRows, int(e)), append(cs.AddedLabels, int32(y))
				}
			}
		}
		pool = slices.DeleteFunc(pool, func(e int) bool { return taken[e] })
		sizes := make([]int64, r.V)
		r.peer.AllgatherI64([]int64{int64(len(labels))}, sizes)
		rec := cotrainRound{Round: cs.Round + 1, Added: added, Val: r.evaluate(r.split.Val, false, names)}
		if added > unknown {
			rec.AddedAcc = float64(right) / float64(added-unknown)
		}
		for _, s := range sizes {
			rec.Labeled = append(rec.Labeled, int(s))
		}
		onRound(rec)
	}
}

// mostConfident returns, flattened as (example, label) pairs, the k pool examples this
// view predicts most confidently for each class (by softmax probability), -1 padded to
// k·C pairs so every view sends the same length.
func (r *rank) mostConfident(pool []int, k int) []int64 {
	z := r.logits(pool, false)
	C := r.C
	type cand struct {
		e int
		p float64
	}
	byClass := make([][]cand, C)
	for i, e := range pool {
		row := z[i*C : (i+1)*C]
		a := argmax(row)
		var s float64
		for _, x := range row {
			s += math.Exp(float64(x - row[a]))
		}
		byClass[a] = append(byClass[a], cand{e, 1 / s})
	}
	out := make([]int64, 0, 2*k*C)
	for c, cs := range byClass {
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].p > cs[j].p })
		for i := 0; i < k; i++ {
			if i < len(cs) {
				out = append(out, int64(cs[i].e), int64(c))
			} else {
				out = append(out, -1, -1)
			}
		}
	}
	return out
}
