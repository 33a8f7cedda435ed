package train

import (
	"fmt"
	"time"

	"mct/blas"
	"mct/data"
	"mct/nn"
	"mct/ranks"
)

// TimeMCTUpdates times the MCT step for benchmarks (bench/mct): every view of ds runs in
// this process, one goroutine each over the local transport, on the CPU backend with the
// BLAS threads a local `mct train` gives each rank. Batches of cfg.Batch unlabeled and
// cfg.LabeledBatch labeled rows (0: cfg.Batch) are drawn from all train rows; weights
// start from the seeded initialisation, Adam at cfg.MCTLR (0: cfg.LR/8). After warmup
// untimed updates it returns the wall time of n updates of all views.
func TimeMCTUpdates(cfg Config, ds *data.Dataset, warmup, n int) (time.Duration, error) {
	if len(ds.Views) < 2 {
		return 0, fmt.Errorf("time MCT updates: %d views, need at least 2", len(ds.Views))
	}
	if cfg.MCTLR == 0 {
		cfg.MCTLR = cfg.LR / 8
	}
	if cfg.LabeledBatch == 0 {
		cfg.LabeledBatch = cfg.Batch
	}
	rows := allRows(len(ds.TrainLabels))
	if len(rows) < max(cfg.Batch, cfg.LabeledBatch) {
		return 0, fmt.Errorf("time MCT updates: %d train rows, fewer than a batch (%d)", len(rows), max(cfg.Batch, cfg.LabeledBatch))
	}
	split := data.Split{Labeled: rows, Unlabeled: rows}
	layout := ranks.Layout{Views: len(ds.Views), Replicas: 1}
	var elapsed time.Duration
	err := ranks.RunLocal(layout.World(), func(c ranks.Comm) error {
		peer, pool, err := ranks.Topology(c, layout)
		if err != nil {
			return err
		}
		defer peer.Close()
		defer pool.Close()
		be := nn.NewCPU()
		blas.SetThreads(blasThreads("local", layout))
		r, err := newRank(cfg, ds, split, be, c, peer, pool)
		if err != nil {
			return err
		}
		r.opt = nn.NewAdam(r.probe, cfg.MCTLR)
		U := data.NewSampler(rows, cfg.Batch, cfg.Seed^0x55)
		L := data.NewSampler(rows, cfg.LabeledBatch, cfg.Seed^0xaa)
		for s := 0; s < warmup; s++ {
			r.mctUpdate(s, U.Next(), L.Next(), ds.TrainLabels)
		}
		c.Barrier()
		start := time.Now()
		for s := warmup; s < warmup+n; s++ {
			r.mctUpdate(s, U.Next(), L.Next(), ds.TrainLabels)
		}
		c.Barrier()
		if c.Rank() == 0 {
			elapsed = time.Since(start)
		}
		return nil
	})
	return elapsed, err
}
