package train

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"mct/blas"
	"mct/data"
	"mct/nn"
	"mct/ranks"
)

// BenchResult is what `mct bench` measures: the MCT update of train/step.go on random
// data, every view, timed after warmup updates, with the time spent inside collectives
// and the bytes they moved.
type BenchResult struct {
	Views            int              `json:"views"`
	Replicas         int              `json:"replicas"`
	Transport        string           `json:"transport"`
	Backend          string           `json:"backend"`
	BLAS             string           `json:"blas"` // the CPU GEMM and its kernel (host-side work on GPUs)
	Batch            int              `json:"batch"`
	Updates          int              `json:"updates"`
	SecondsPerUpdate float64          `json:"seconds_per_update"`
	UpdatesPerSecond float64          `json:"updates_per_second"`
	CommPerUpdate    float64          `json:"comm_seconds_per_update"` // rank 0, waiting included
	BytesPerUpdate   map[string]int64 `json:"bytes_per_update"`        // received by rank 0, per collective
	ParamsPerView    int64            `json:"params_per_view_max"`
	FLOPsPerUpdate   float64          `json:"flops_per_update"`    // the matrix products' 2·m·n·k, all views (updateFLOPs)
	GEMMRate         float64          `json:"gemm_rate,omitempty"` // measured bf16 GEMM FLOP/s (GPU)
	// LaunchesPerUpdate is rank 0's stream operations per update (kernels, GEMMs,
	// memsets, device copies), for a backend that counts them (cudaops).
	LaunchesPerUpdate float64 `json:"launches_per_update,omitempty"`
	// UploadBytesPerUpdate is what rank 0 copies from the host to its backend per update
	// (Upload): the batch (its row indices with resident features, else its rows), the
	// other views' logits if LogitsExchange is "host", the feedback weights, and with replicas
	// the all-reduced sums.
	UploadBytesPerUpdate float64 `json:"upload_bytes_per_update"`
	// FeaturesResident says rank 0 kept its view's training features on its backend and
	// gathered each batch there (train.resident; MCT_RESIDENT=0 turns it off).
	FeaturesResident bool `json:"features_resident"`
	// CUDAGraphs says rank 0 replayed the update's segments as CUDA graphs to the end
	// (a backend that records them, one replica per view, MCT_CUDA_GRAPHS not 0).
	CUDAGraphs bool `json:"cuda_graphs"`
	// LogitsExchange says how the teacher logits went from view to view: "backends"
	// (one process, backends that read each other's buffers: host memory or one GPU),
	// "mpi-device" (a CUDA-aware MPI on device buffers) or "host" (downloaded, gathered,
	// uploaded; MCT_DEVICE_EXCHANGE=0 forces it).
	LogitsExchange string `json:"logits_exchange"`
	// HostWaitPerUpdate is rank 0's time per update blocked on its device (downloads,
	// syncs), for a backend that counts it (cudaops): near SecondsPerUpdate when the
	// device's work bounds the update, near 0 when launches or host work do.
	HostWaitPerUpdate float64 `json:"host_wait_seconds_per_update,omitempty"`
	// SegmentsPerUpdate is rank 0's device time per update in each segment it replayed
	// (A: teacher forward, B: steps 2–4, C: teacher step; train/step.go), with
	// BenchOptions.SegmentTimes on a backend that times them (cudaops). Their sum
	// against SecondsPerUpdate is how busy the device was.
	SegmentsPerUpdate map[string]float64 `json:"segment_seconds_per_update,omitempty"`
	// OpsPerUpdate is rank 0's device time per update by operation (kernel name, or GEMM
	// and its shape) in its recorded segments, with BenchOptions.OpTimes on a backend
	// that times them (cudaops); OpSegmentsLate of OpSegments timed may include launch
	// gaps. Timing each operation slows the update: SecondsPerUpdate is not the untimed one.
	OpsPerUpdate     map[string]float64 `json:"op_seconds_per_update,omitempty"`
	OpSegments       int                `json:"op_segments,omitempty"`
	OpSegmentsLate   int                `json:"op_segments_late,omitempty"`
	RooflineFraction float64            `json:"roofline_fraction,omitempty"` // FLOPs/update ÷ time ÷ GEMMRate
	// Note says why --device auto ran on the CPU when there were GPUs to use.
	Note string `json:"note,omitempty"`
}

// segmentsPerUpdate turns a backend's segment times by Record key ("mct/A/u…/l…",
// train/step.go) into seconds per update by segment name ("A").
func segmentsPerUpdate(byKey map[string]float64, n int) map[string]float64 {
	out := map[string]float64{}
	for key, sec := range byKey {
		name := key
		if parts := strings.Split(key, "/"); len(parts) > 2 && parts[0] == "mct" {
			name = parts[1]
		}
		out[name] += sec / float64(n)
	}
	return out
}

// RandomViews is a dataset of rows train examples with one view per entry of dims
// (named a, b, …): features N(0,1), labels uniform in [0, classes); no test split. For
// benchmarks and the step tests.
func RandomViews(dims []int, classes, rows int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := &data.Dataset{Name: "random", Classes: classes, TrainLabels: make([]int32, rows)}
	for i := range ds.TrainLabels {
		ds.TrainLabels[i] = int32(rng.IntN(classes))
	}
	for v, d := range dims {
		x := make([]float32, rows*d)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		ds.Views = append(ds.Views, data.View{Name: string(rune('a' + v)), Dim: d, Train: x})
	}
	return ds
}

// BenchOptions says what Bench times: Updates timed updates after Warmup untimed ones.
// SegmentTimes also times each recorded segment on the device, on a backend that can
// (cudaops: two events around each graph launch, not counted as launches).
// OpTimes instead times every operation of the recorded segments on the device, on a
// backend that can (cudaops: one by one, not as graphs, so the update takes longer than
// it does untimed).
type BenchOptions struct {
	Warmup, Updates int
	SegmentTimes    bool
	OpTimes         bool
}

// segmentTimer is a backend that times its recorded segments on the device (cudaops).
type segmentTimer interface {
	TimeSegments()
	SegmentSeconds() map[string]float64 // by Record key, since TimeSegments
}

// opTimer is a backend that times the operations of its recorded segments one by one on
// the device (cudaops).
type opTimer interface {
	TimeOps() error
	// OpSeconds is the device time by operation name since TimeOps, the segments timed,
	// and how many of them were late (their times may include the host's launch gaps).
	OpSeconds() (seconds map[string]float64, segments, late int)
}

// Bench times the MCT updates o asks for, of every view of ds with cfg's probe, batches
// and device. Launched by mpirun it measures the MPI transport (views × replicas = world
// size; ds must hold every view in every process); otherwise the local one.
func Bench(cfg Config, ds *data.Dataset, o BenchOptions) (*BenchResult, error) {
	warmup, n := o.Warmup, o.Updates
	if n < 1 {
		return nil, fmt.Errorf("bench: %d timed updates, need at least 1", n)
	}
	cfg, err := updatesSetup("bench", cfg, ds)
	if err != nil {
		return nil, err
	}
	var res *BenchResult
	run := func(world ranks.Comm, transport string) error {
		layout, err := ranks.NewLayout(world.Size(), len(ds.Views))
		if err != nil {
			return err
		}
		meter := &meter{bytes: map[string]int64{}}
		peer, pool, err := ranks.Topology(world, layout)
		if err != nil {
			return err
		}
		defer peer.Close()
		defer pool.Close()
		be, note, err := rankDevice(cfg, world, layout, transport)
		if err != nil {
			return err
		}
		rows := allRows(len(ds.TrainLabels))
		split := data.Split{Labeled: rows, Unlabeled: rows}
		on := world.Rank() == 0
		r, err := newRank(cfg, ds, split, be, meter.wrap(world, on), meter.wrap(peer, on), meter.wrap(pool, on))
		if err != nil {
			return err
		}
		r.opt = nn.NewAdam(r.probe, cfg.MCTLR)
		U, L := r.mctSamplers()
		for s := 0; s < warmup; s++ {
			r.mctUpdate(s, U.Next(), L.Next(), ds.TrainLabels)
		}
		be.Sync()
		world.Barrier()
		meter.reset()
		counter, counts := be.(interface{ Launches() int64 })
		up, upCounts := be.(interface{ UploadedBytes() int64 })
		waiter, waits := be.(interface{ HostWaitSeconds() float64 })
		timer, timed := be.(segmentTimer)
		timed = timed && o.SegmentTimes && on
		opTiming, opsTimed := be.(opTimer)
		opsTimed = opsTimed && o.OpTimes && on
		var opsErr error
		if opsTimed {
			opsErr = opTiming.TimeOps()
		}
		if !r0OK(world, opsErr) { // collective: the other ranks must not start updating
			return orOther(opsErr)
		}
		var launches0, up0 int64
		var waited0 float64
		if counts {
			launches0 = counter.Launches()
		}
		if upCounts {
			up0 = up.UploadedBytes()
		}
		if waits {
			waited0 = waiter.HostWaitSeconds()
		}
		if timed {
			timer.TimeSegments()
		}
		start := time.Now()
		for s := warmup; s < warmup+n; s++ {
			r.mctUpdate(s, U.Next(), L.Next(), ds.TrainLabels)
		}
		be.Sync()
		world.Barrier()
		if !on {
			return nil
		}
		sec := time.Since(start).Seconds()
		res = &BenchResult{Views: layout.Views, Replicas: layout.Replicas, Transport: transport, Backend: be.Name(), BLAS: blas.Impl(),
			Batch: cfg.Batch, Updates: n, SecondsPerUpdate: sec / float64(n), UpdatesPerSecond: float64(n) / sec,
			CommPerUpdate: meter.seconds / float64(n), BytesPerUpdate: map[string]int64{}}
		if counts {
			res.LaunchesPerUpdate = float64(counter.Launches()-launches0) / float64(n)
		}
		if upCounts {
			res.UploadBytesPerUpdate = float64(up.UploadedBytes()-up0) / float64(n)
		}
		if waits {
			res.HostWaitPerUpdate = (waiter.HostWaitSeconds() - waited0) / float64(n)
		}
		if timed {
			res.SegmentsPerUpdate = segmentsPerUpdate(timer.SegmentSeconds(), n)
		}
		if opsTimed {
			var byOp map[string]float64
			byOp, res.OpSegments, res.OpSegmentsLate = opTiming.OpSeconds()
			res.OpsPerUpdate = map[string]float64{}
			for name, sec := range byOp {
				res.OpsPerUpdate[name] = sec / float64(n)
			}
		}
		res.FeaturesResident = r.res != nil
		res.CUDAGraphs = r.rec != nil
		res.LogitsExchange, res.Note = r.exchange, note
		for k, b := range meter.bytes {
			res.BytesPerUpdate[k] = b / int64(n)
		}
		for _, v := range ds.Views {
			p, err := nn.NewProbe(nn.NewCPU(), nn.Config{Arch: cfg.Arch, In: v.Dim, Classes: ds.Classes, Hidden: cfg.Hidden}, 0)
			if err != nil {
				return err
			}
			res.ParamsPerView = max(res.ParamsPerView, int64(p.NumParams()))
			res.FLOPsPerUpdate += updateFLOPs(p, cfg.Batch, r.labeledBatch(), r.feedback())
		}
		return nil
	}
	if ranks.Launched() {
		world, err := ranks.World()
		if err != nil {
			return nil, err
		}
		if _, err := ranks.NewLayout(world.Size(), len(ds.Views)); err != nil {
			return nil, refuse(world, "bench", err)
		}
		err = run(world, "mpi")
		if cerr := world.Close(); err == nil {
			err = cerr
		}
		return res, err
	}
	if err := checkDevice(cfg.Device); err != nil { // before the ranks, which would each name it
		return nil, err
	}
	err = ranks.RunLocal(len(ds.Views), func(c ranks.Comm) error { return run(c, "local") })
	return res, err
}

// Updates runs n MCT updates (train/step.go) of every view of ds in this process, one
// rank per view on the local transport, rank v on the backend open(v) returns, with
// cfg's probe and batch sizes from the start Bench uses, and returns the SHA-256 of
// each view's weights after them (nn.Probe.Checksum). Backends' tests compare such runs:
// cudaops checks that CUDA graphs (MCT_CUDA_GRAPHS) leave every bit unchanged.
func Updates(cfg Config, ds *data.Dataset, n int, open func(view int) (nn.Backend, error)) ([]string, error) {
	cfg, err := updatesSetup("updates", cfg, ds)
	if err != nil {
		return nil, err
	}
	sums := make([]string, len(ds.Views))
	err = onLocalRanks(cfg, ds, ranks.Layout{Views: len(ds.Views), Replicas: 1}, open, func(r *rank) error {
		r.opt = nn.NewAdam(r.probe, cfg.MCTLR)
		U, L := r.mctSamplers()
		for s := 0; s < n; s++ {
			r.mctUpdate(s, U.Next(), L.Next(), ds.TrainLabels)
		}
		sums[r.view] = r.probe.Checksum()
		return nil
	})
	return sums, err
}

// updatesSetup is what Bench and Updates (named by what) share before their first
// update: at least two views, a batch's worth of rows (every row is in both the labeled
// and the unlabeled set), and the MCT learning rate defaulting to LR/8.
func updatesSetup(what string, cfg Config, ds *data.Dataset) (Config, error) {
	if len(ds.Views) < 2 {
		return cfg, fmt.Errorf("%s: %d view(s), an MCT update needs at least 2", what, len(ds.Views))
	}
	if err := CheckEnv(); err != nil {
		return cfg, err
	}
	if cfg.MCTLR == 0 {
		cfg.MCTLR = cfg.LR / 8
	}
	if n := len(ds.TrainLabels); n < max(cfg.Batch, cfg.LabeledBatch) {
		return cfg, fmt.Errorf("%s: %d rows, fewer than a batch (%d)", what, n, max(cfg.Batch, cfg.LabeledBatch))
	}
	return cfg, nil
}

// meter adds up the time rank 0 spends in collectives and the bytes it receives.
type meter struct {
	mu      sync.Mutex
	seconds float64
	bytes   map[string]int64
}

func (m *meter) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seconds = 0
	clear(m.bytes)
}

func (m *meter) wrap(c ranks.Comm, on bool) ranks.Comm {
	if !on {
		return c
	}
	mc := &meteredComm{Comm: c, m: m}
	switch c := c.(type) {
	case ranks.InProcess:
		return &meteredInProcess{meteredComm: mc, in: c}
	case ranks.AddrComm:
		return &meteredAddr{meteredComm: mc, ac: c}
	}
	return mc
}

func (m *meter) add(op string, bytes int, start time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seconds += time.Since(start).Seconds()
	m.bytes[op] += int64(bytes)
}

// meteredComm is a Comm that reports each collective to its meter.
type meteredComm struct {
	ranks.Comm
	m *meter
}

func (c *meteredComm) AllgatherF32(s, r []float32) {
	t := time.Now()
	c.Comm.AllgatherF32(s, r)
	c.m.add("allgather", 4*len(r), t)
}

func (c *meteredComm) AllgatherF64(s, r []float64) {
	t := time.Now()
	c.Comm.AllgatherF64(s, r)
	c.m.add("allgather", 8*len(r), t)
}

func (c *meteredComm) AllgatherI64(s, r []int64) {
	t := time.Now()
	c.Comm.AllgatherI64(s, r)
	c.m.add("allgather", 8*len(r), t)
}

func (c *meteredComm) AllreduceF32(b []float32) {
	t := time.Now()
	c.Comm.AllreduceF32(b)
	c.m.add("allreduce", 4*len(b), t)
}

func (c *meteredComm) AllreduceF64(b []float64) {
	t := time.Now()
	c.Comm.AllreduceF64(b)
	c.m.add("allreduce", 8*len(b), t)
}

func (c *meteredComm) AllreduceI64(b []int64, op ranks.Op) {
	t := time.Now()
	c.Comm.AllreduceI64(b, op)
	c.m.add("allreduce", 8*len(b), t)
}

func (c *meteredComm) Barrier() {
	t := time.Now()
	c.Comm.Barrier()
	c.m.add("barrier", 0, t)
}

// meteredInProcess is a meteredComm of the local transport: the views still hand each
// other their buffers (peerLogits), and the exchange's barriers are metered.
type meteredInProcess struct {
	*meteredComm
	in ranks.InProcess
}

func (c *meteredInProcess) Share(v any) []any { return c.in.Share(v) }

// meteredAddr is a meteredComm of the MPI transport, whose all-gather on addresses a
// CUDA-aware library runs on device buffers (exchangeMPIDevice).
type meteredAddr struct {
	*meteredComm
	ac ranks.AddrComm
}

func (c *meteredAddr) AllgatherAddrF32(send, recv uintptr, n int, around func(func())) {
	t := time.Now()
	c.ac.AllgatherAddrF32(send, recv, n, around)
	c.m.add("allgather", 4*n*c.Size(), t)
}

// onLocalRanks runs fn on every rank of a local world of the given layout (one goroutine
// each), with a backend from open(world rank) and every row of ds in both the labeled
// and the unlabeled set: callers name their batches' rows themselves.
func onLocalRanks(cfg Config, ds *data.Dataset, layout ranks.Layout, open func(worldRank int) (nn.Backend, error), fn func(r *rank) error) error {
	rows := allRows(len(ds.TrainLabels))
	return ranks.RunLocal(layout.World(), func(world ranks.Comm) error {
		peer, pool, err := ranks.Topology(world, layout)
		if err != nil {
			return err
		}
		defer peer.Close()
		defer pool.Close()
		be, err := open(world.Rank())
		if err != nil {
			return err
		}
		r, err := newRank(cfg, ds, data.Split{Labeled: rows, Unlabeled: rows}, be, world, peer, pool)
		if err != nil {
			return err
		}
		return fn(r)
	})
}
