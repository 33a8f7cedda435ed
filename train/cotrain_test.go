package train

import (
	"context"
	"io"
	"sync"
	"testing"

	"mct/nn"
)

// TestCotrainRounds: the co-training baseline runs its rounds, each view proposing at
// most k examples per class, and an example taken in a round joins the labeled sets of
// every view but the one that proposed it: the sets grow by (V−1)·added in all. The
// same seed gives the same parameters.
func TestCotrainRounds(t *testing.T) {
	dir, all := synthDir(t)
	const V, k, rounds, classes = 3, 5, 3, 4
	run := func() (*Summary, []cotrainRound) {
		cfg := tinyRun(t, "cotrain", dir, all[:V], 5)
		cfg.WarmupEpochs, cfg.Patience = 2, 1
		cfg.CotrainRounds, cfg.CotrainK = rounds, k
		s, err := Run(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var recs []cotrainRound
		for _, m := range readMetrics[struct {
			Record cotrainRound `json:"record"`
		}](t, cfg.Out, "cotrain") {
			recs = append(recs, m.Record)
		}
		return s, recs
	}
	s, recs := run()
	if len(recs) != rounds {
		t.Fatalf("%d co-training rounds logged, want %d", len(recs), rounds)
	}
	prev := V * s.Labeled
	for i, rec := range recs {
		total := 0
		for _, n := range rec.Labeled {
			total += n
		}
		if rec.Round != i+1 || rec.Added < 1 || rec.Added > V*k*classes || total-prev != (V-1)*rec.Added {
			t.Errorf("round %d: %+v: want round %d, 1 to %d added, and the labeled sets (%d in all before) grown by (V−1)·added",
				i+1, rec, i+1, V*k*classes, prev)
		}
		if !(rec.AddedAcc >= 0 && rec.AddedAcc <= 1) {
			t.Errorf("round %d: label accuracy %v", i+1, rec.AddedAcc)
		}
		prev = total
	}
	again, _ := run()
	sameParams(t, "seed 5", s, "seed 5 again", again)
}

// liveAlloc is the CPU backend keeping count of the floats allocated and not freed, as
// a device's memory use.
type liveAlloc struct {
	*nn.CPU
	mu   *sync.Mutex
	live map[*float32]int
}

func (a *liveAlloc) Alloc(n int) nn.Buf {
	b := a.CPU.Alloc(n)
	if n > 0 {
		a.mu.Lock()
		a.live[&b.(nn.HostBuf)[0]] = n
		a.mu.Unlock()
	}
	return b
}

func (a *liveAlloc) Free(b nn.Buf) {
	if h := b.(nn.HostBuf); len(h) > 0 {
		a.mu.Lock()
		if a.live[&h[0]] == len(h) { // not a view
			delete(a.live, &h[0])
		}
		a.mu.Unlock()
	}
	a.CPU.Free(b)
}

// TestCotrainFreesRounds: each co-training round's fresh probe, tapes, gradients and
// optimizer replace the last round's in memory: a run of three rounds ends holding what
// a run of one holds.
func TestCotrainFreesRounds(t *testing.T) {
	dir, all := synthDir(t)
	var mu sync.Mutex
	live := map[*float32]int{}
	RegisterDevice("cpu-live", func(int, int, string) (nn.Backend, error) {
		return &liveAlloc{CPU: nn.NewCPU(), mu: &mu, live: live}, nil
	})
	held := func(rounds int) int {
		clear(live)
		cfg := tinyRun(t, "cotrain", dir, all[:2], 5)
		cfg.Device = "cpu-live"
		cfg.WarmupEpochs, cfg.Patience = 2, 1
		cfg.CotrainRounds, cfg.CotrainK = rounds, 5
		if _, err := Run(context.Background(), cfg, io.Discard); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range live {
			n += f
		}
		return n
	}
	if one, three := held(1), held(3); one == 0 || three != one {
		t.Errorf("a run of 3 co-training rounds ends holding %d floats, a run of 1 %d: rounds leak", three, one)
	}
}
