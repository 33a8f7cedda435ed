package train

import (
	"math"
	"testing"

	"mct/data"
	"mct/nn"
	"mct/ranks"
)

// This file holds what the MCT step tests share (their data is RandomViews): a driver
// that runs mctUpdate for every view and replica over the local transport.

// batchPlan is the batches of a run of updates: U[s] and L[s] are the global unlabeled
// and labeled indices of update s, shared by every view.
type batchPlan struct {
	U, L [][]int
}

// viewRun is what one rank saw and ended with.
type viewRun struct {
	InitParams, InitBuffers   []float32 // before the first update
	Params, Buffers           []float32 // after the last
	Stats                     []stepStats
	YHat                      [][]float32 // per update: every view's pseudo-labels of this replica's rows (V×n)
	Checksum                  string
	InitChecksum              string
	LocalRows                 [2]int // this replica's [lo, hi) of the unlabeled batch
	ProbeParams, ProbeBuffers []*nn.Param
}

// runSteps runs the updates of plan for every view (replicas per view) with cfg over the
// local transport and the CPU backend, from the probes' seeded initialisation and a fresh
// Adam at cfg.MCTLR. before, if set, runs on every rank first (e.g. to pretrain a view),
// after, if set, after the last update. The result is indexed by view, then replica.
func runSteps(t *testing.T, cfg Config, ds *data.Dataset, replicas int, plan batchPlan, before, after func(r *rank)) [][]viewRun {
	t.Helper()
	V := len(ds.Views)
	layout := ranks.Layout{Views: V, Replicas: replicas}
	out := make([][]viewRun, V)
	for v := range out {
		out[v] = make([]viewRun, replicas)
	}
	cpu := func(int) (nn.Backend, error) { return nn.NewCPU(), nil }
	// The split holds every row and only sizes the labeled batch; the plan names the rows.
	err := onLocalRanks(cfg, ds, layout, cpu, func(r *rank) error {
		if before != nil {
			before(r)
		}
		r.opt = nn.NewAdam(r.probe, cfg.MCTLR)
		res := viewRun{ProbeParams: r.probe.Params(), ProbeBuffers: r.probe.Buffers()}
		res.InitParams, res.InitBuffers = probeState(r.probe)
		res.InitChecksum = r.probe.Checksum()
		lo, hi := r.localRange(cfg.Batch)
		res.LocalRows = [2]int{lo, hi}
		for s := range plan.U {
			res.Stats = append(res.Stats, r.mctUpdate(s, plan.U[s], plan.L[s], ds.TrainLabels))
			y := make([]float32, V*(hi-lo))
			r.be.Download(y, r.yHat)
			res.YHat = append(res.YHat, y)
		}
		res.Params, res.Buffers = probeState(r.probe)
		res.Checksum = r.probe.Checksum()
		if after != nil {
			after(r)
		}
		out[r.view][r.replica] = res
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// probeState downloads a probe's parameters and BatchNorm running statistics, each
// flat in PyTorch state_dict order.
func probeState(p *nn.Probe) (params, buffers []float32) {
	b := p.Backend()
	params = make([]float32, p.NumParams())
	b.Download(params, p.Flat())
	for _, q := range p.Buffers() {
		h := make([]float32, q.W.Len())
		b.Download(h, q.W)
		buffers = append(buffers, h...)
	}
	return params, buffers
}

// globalYHat assembles update s's pseudo-labels of every view over the whole unlabeled
// batch (V×B, view-major) from the replicas' local rows.
func globalYHat(runs [][]viewRun, s, B int) [][]int32 {
	V := len(runs)
	y := make([][]int32, V)
	for w := range y {
		y[w] = make([]int32, B)
	}
	for _, rr := range runs[0] {
		lo, hi := rr.LocalRows[0], rr.LocalRows[1]
		n := hi - lo
		for w := 0; w < V; w++ {
			for i := 0; i < n; i++ {
				y[w][lo+i] = int32(rr.YHat[s][w*n+i])
			}
		}
	}
	return y
}

// relErr is ‖a−b‖/‖b‖ over the elements of a and b (float64 sums).
func relErr(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		e := float64(a[i]) - float64(b[i])
		d += e * e
		n += float64(b[i]) * float64(b[i])
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}
