//go:build cuda

package cudaops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"mct/nn"
	"mct/train"
)

// GPU-only tests of Record (CUDA graphs); TestMain skips them without a device.

// TestGraphReplay: a recorded segment replayed after its inputs' contents changed
// computes on the new contents, bit for bit as direct launches do; a change of shape
// or argument under the same key is captured anew, never replayed stale; a host read
// inside a segment panics and leaves the backend usable.
func TestGraphReplay(t *testing.T) {
	gpu.SetPrecision(FP32)
	const n = 96
	x, w, y, s := gpu.Alloc(n*n), gpu.Alloc(n*n), gpu.Alloc(n*n), gpu.Alloc(1)
	defer func() {
		for _, b := range []nn.Buf{x, w, y, s} {
			gpu.Free(b)
		}
	}()
	r := rand.New(rand.NewPCG(1, 2))
	randn := func(k int) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	gpu.Upload(w, randn(n*n))
	// A segment of every kind of op: a GEMM, kernels, a memset, a device copy.
	seg := func(m int, alpha float32) func() {
		return func() {
			gpu.Gemm(false, true, m, m, m, 1, x, w, 0, y)
			gpu.AddBiasLeakyReLU(y, nil, m, m, 0.1)
			gpu.Axpy(y, alpha, x, m*m)
			gpu.Fill(gpu.View(y, 0, m), m, 0.25)
			gpu.Copy(gpu.View(y, m, m), x, m)
		}
	}
	result := func(m int, alpha float32, xs []float32, record string) []float32 {
		gpu.Upload(x, xs)
		if record != "" {
			if err := gpu.Record(record, seg(m, alpha)); err != nil {
				t.Fatalf("Record: %v", err)
			}
		} else {
			seg(m, alpha)()
		}
		h := make([]float32, m*m)
		gpu.Download(h, y)
		return h
	}
	same := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d is %g recorded, %g direct", what, i, got[i], want[i])
			}
		}
	}
	// The first call issues the ops one by one, the second captures them, the third
	// replays the graph.
	st0 := gpu.GraphStats()
	for i := 0; i < 3; i++ {
		xs := randn(n * n)
		same(fmt.Sprintf("input %d", i), result(n, 0.5, xs, "t"), result(n, 0.5, xs, ""))
	}
	st := gpu.GraphStats()
	if d := gpu.statsSince(st0); d != (GraphStats{Warmups: 1, Captures: 1, Replays: 1}) {
		t.Errorf("3 calls of one segment: %+v; want 1 warm-up, 1 capture, 1 replay", d)
	}
	// Another shape, then another argument, under the same key: each issued one by one,
	// then captured anew, never replayed stale.
	xs := randn(n * n)
	for i := range 2 {
		same(fmt.Sprintf("smaller shape, call %d", i), result(n/2, 0.5, xs, "t"), result(n/2, 0.5, xs, ""))
	}
	for i := range 2 {
		same(fmt.Sprintf("other argument, call %d", i), result(n/2, -2, xs, "t"), result(n/2, -2, xs, ""))
	}
	if d := gpu.statsSince(st); d != (GraphStats{Warmups: 2, Captures: 2}) {
		t.Errorf("changed shape and argument, twice each: %+v; want 2 warm-ups and 2 captures", d)
	}
	// An argument that changes every call: after maxRecaptures the key is refused,
	// with the difference named, and the work is still done.
	var err error
	for i := 0; i <= maxRecaptures+1 && err == nil; i++ {
		alpha := float32(i) + 0.5
		gpu.Upload(x, xs)
		err = gpu.Record("drift", seg(n, alpha))
		h := make([]float32, n*n)
		gpu.Download(h, y)
		same(fmt.Sprintf("drifting argument, call %d", i), h, result(n, alpha, xs, ""))
	}
	if err == nil || !strings.Contains(err.Error(), "kernel axpy") {
		t.Errorf("a segment whose argument changes every call: Record error %v, want one naming kernel axpy", err)
	}
	// A host read inside a segment is a programming error.
	func() {
		defer func() {
			if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "Download inside Record") {
				t.Errorf("Download inside Record: panic %v", p)
			}
		}()
		gpu.Record("bad", func() { gpu.Download(make([]float32, 1), s) })
	}()
	same("after the panic", result(n, 0.5, xs, "t"), result(n, 0.5, xs, ""))
}

// TestGraphsMCTBitIdentical: N updates of the real MCT step (train.Updates, two views,
// one backend each) with CUDA graphs give bit for bit the weights of N updates without
// (MCT_CUDA_GRAPHS=0) from the same start, and the graphs were really replayed; and so
// do N updates with each batch gathered on the host (MCT_RESIDENT=0) instead of on the
// device from the resident features, which upload the features once and then only the
// batches' row indices; and N updates with the teacher logits passed through the host
// (MCT_DEVICE_EXCHANGE=0) instead of from one backend's stream to the other's.
func TestGraphsMCTBitIdentical(t *testing.T) {
	const updates = 5
	defer gpu.SetPrecision(FP32)
	views := []*Backend{gpu, nil}
	var err error
	if views[1], err = New(Options{Device: 0}); err != nil {
		t.Fatal(err)
	}
	defer views[1].Close()
	ds := train.RandomViews([]int{64, 48}, 10, 512, 5)
	cases := []struct {
		name string
		prec Precision
		edit func(*train.Config)
	}{
		{"bf16-dropout", BF16, func(c *train.Config) { c.Dropout = 0.1 }},
		{"fp32-hard-exact-h", FP32, func(c *train.Config) { c.Hard, c.ExactH = true, true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := train.Defaults()
			cfg.Hidden, cfg.Batch, cfg.LabeledBatch, cfg.Seed = []int{128, 128, 128}, 64, 32, 11
			tc.edit(&cfg)
			var uploaded int64 // view 0's bytes uploaded by the last run
			run := func(graphs, resident, exchange string) ([]string, []GraphStats) {
				t.Setenv("MCT_CUDA_GRAPHS", graphs)
				t.Setenv("MCT_RESIDENT", resident)
				t.Setenv("MCT_DEVICE_EXCHANGE", exchange)
				before := make([]GraphStats, len(views))
				for v, b := range views {
					b.SetPrecision(tc.prec)
					before[v] = b.GraphStats()
				}
				up0 := views[0].UploadedBytes()
				defer func() { uploaded = views[0].UploadedBytes() - up0 }()
				sums, err := train.Updates(cfg, ds, updates, func(v int) (nn.Backend, error) { return views[v], nil })
				if err != nil {
					t.Fatal(err)
				}
				delta := make([]GraphStats, len(views))
				for v, b := range views {
					delta[v] = b.statsSince(before[v])
				}
				return sums, delta
			}
			off, offStats := run("0", "1", "1")
			host, hostStats := run("1", "0", "1")
			hostUp := uploaded
			viaHost, _ := run("1", "1", "0")
			viaHostUp := uploaded
			on, onStats := run("1", "1", "1")
			if !slices.Equal(on, off) {
				t.Errorf("weights after %d updates: with graphs %v, without %v", updates, on, off)
			}
			if !slices.Equal(viaHost, on) {
				t.Errorf("weights after %d updates: logits through the host %v, device to device %v", updates, viaHost, on)
			}
			// Through the host view 0 also uploads view 1's logits (64 rows of 10) every
			// update; device to device they never cross, which shows the backends really
			// passed them (a fallback to the host path would upload the same).
			if want := int64(updates * 4 * 64 * 10); viaHostUp-uploaded != want {
				t.Errorf("view 0 uploaded %d B with the logits through the host, %d B device to device: difference %d, want %d",
					viaHostUp, uploaded, viaHostUp-uploaded, want)
			}
			if !slices.Equal(host, on) {
				t.Errorf("weights after %d updates: batches gathered on the host %v, on the device %v", updates, host, on)
			}
			// Resident: view 0's features (512 rows of 64) once; the host gather: every
			// update's 64+32 rows. The rest is the same.
			if want := int64(4*512*64 - updates*4*(64+32)*64); uploaded-hostUp != want {
				t.Errorf("view 0 uploaded %d B with resident features, %d B with the host gather: difference %d, want %d",
					uploaded, hostUp, uploaded-hostUp, want)
			}
			// Three segments per update: issued one by one in the first (new buffers, so
			// new ops), captured in the second, replayed after.
			want := GraphStats{Warmups: 3, Captures: 3, Replays: 3 * (updates - 2)}
			if s := hostStats[0]; s != want {
				t.Errorf("view 0 with graphs and the host gather: %+v, want %+v", s, want)
			}
			for v := range views {
				if s := offStats[v]; s != (GraphStats{}) {
					t.Errorf("view %d recorded with MCT_CUDA_GRAPHS=0: %+v", v, s)
				}
				if s := onStats[v]; s != want {
					t.Errorf("view %d with graphs: %+v, want %+v", v, s, want)
				}
			}
		})
	}
}

// The timing tests' segment: timedProducts products of timedN³ in FP32 (and a Scale kernel after
// them with scale), on a backend of their own that the test's cleanup closes.
const timedN, timedProducts = 2048, 10

func timedGemms(t *testing.T, scale bool) (*Backend, func()) {
	t.Helper()
	b, err := New(Options{Device: 0, Precision: FP32})
	if err != nil {
		t.Fatal(err)
	}
	x, y := b.Alloc(timedN*timedN), b.Alloc(timedN*timedN)
	t.Cleanup(func() {
		b.Free(x)
		b.Free(y)
		b.Close()
	})
	b.Fill(x, timedN*timedN, 1e-3)
	return b, func() {
		for range timedProducts {
			b.Gemm(false, false, timedN, timedN, timedN, 1, x, x, 0, y)
		}
		if scale {
			b.Scale(y, timedN*timedN, 0.5)
		}
	}
}

// recordCalls runs seg under Record(key) calls times, each waited for, and returns the
// wall time of them all.
func recordCalls(t *testing.T, b *Backend, key string, seg func(), calls int) time.Duration {
	t.Helper()
	var wall time.Duration
	for range calls {
		start := time.Now()
		if err := b.Record(key, seg); err != nil {
			t.Fatal(err)
		}
		b.Sync()
		wall += time.Since(start)
	}
	return wall
}

// TestSegmentTimes: with TimeSegments, a replayed segment's device time lies between
// the time its GEMMs need at 1 PFLOP/s (beyond any GPU's fp32 rate: so the events do
// bracket the work) and the host's wall time around it; the host's wait for it is
// counted; and the timing events do not count as launches.
func TestSegmentTimes(t *testing.T) {
	const calls = 3
	b, seg := timedGemms(t, false)
	b.Sync()
	b.TimeSegments()
	launches, waited := b.Launches(), b.HostWaitSeconds()
	wall := recordCalls(t, b, "gemms", seg, calls)
	w := b.HostWaitSeconds() - waited
	got := b.SegmentSeconds()
	dev, floor := got["gemms"], calls*timedProducts*2*math.Pow(timedN, 3)/1e15
	if len(got) != 1 || dev < floor || dev > wall.Seconds() {
		t.Errorf("segment times %v: want gemms between %g s (1 PFLOP/s) and the wall time %g s", got, floor, wall.Seconds())
	}
	if w < dev/2 || w > wall.Seconds() {
		t.Errorf("the host waited %g s for %g s of device work in %g s", w, dev, wall.Seconds())
	}
	// The first call issues the GEMMs one by one, the others launch the graph.
	if l := b.Launches() - launches; l != timedProducts+calls-1 {
		t.Errorf("%d launches for %d GEMMs and %d graph launches: the timing events were counted", l, timedProducts, calls-1)
	}
	t.Logf("%d×%d GEMMs of %d³ (fp32): %.2f ms on the device, %.2f ms wall", calls, timedProducts, timedN, 1e3*dev, 1e3*wall.Seconds())
}

// TestOpTimes: with TimeOps, Record issues a segment's operations one by one, no graph,
// each between timing events behind the spacer: 10 GEMMs of 2048³ take between their
// time at 1 PFLOP/s and the wall time, the Scale kernel a positive time, no segment is
// late (the spacer holds the GPU while the host queues 11 operations), and the operations
// alone, not the spacer or the events, count as launches. The segment runs once untimed
// first, as Bench's warm-up updates do: a cuBLAS kernel loaded lazily at its first launch
// may wait for the work queued before it (CUDA programming guide, "Lazy Loading"), which
// inside a timed segment would be the spacer, and the segment would be late.
func TestOpTimes(t *testing.T) {
	const calls = 3
	b, seg := timedGemms(t, true)
	seg()
	if err := b.TimeOps(); err != nil {
		t.Fatal(err)
	}
	b.Sync()
	launches := b.Launches()
	wall := recordCalls(t, b, "ops", seg, calls)
	got, segments, late := b.OpSeconds()
	gemm, floor := got[fmt.Sprintf("Gemm %dx%dx%d", timedN, timedN, timedN)], calls*timedProducts*2*math.Pow(timedN, 3)/1e15
	if gemm < floor || gemm > wall.Seconds() || got["kernel scale"] <= 0 || len(got) != 2 {
		t.Errorf("operation times %v: want the GEMMs between %g s (1 PFLOP/s) and the wall time %g s, and the scale kernel's", got, floor, wall.Seconds())
	}
	if segments != calls || late != 0 {
		t.Errorf("%d segments timed, %d late; want %d, none late", segments, late, calls)
	}
	if l := b.Launches() - launches; l != calls*(timedProducts+1) {
		t.Errorf("%d launches for %d calls of %d operations", l, calls, timedProducts+1)
	}
	if st := b.GraphStats(); st != (GraphStats{}) {
		t.Errorf("graph stats %+v with every operation timed, want none", st)
	}
	t.Logf("%d×%d GEMMs of %d³ (fp32): %.2f ms on the device, %.2f ms wall", calls, timedProducts, timedN, 1e3*gemm, 1e3*wall.Seconds())
}

// TestDeviceOperandsReplay: a segment whose per-update values reach the kernels through
// device operands (Adam's sched and the clipping factor gscale from ClipCoef, the dropout
// and sampling steps' stepAt, SoftmaxCE's scaleAt) is replayed when only the host-side values its caller still computes change,
// as they do every MCT update (nn.Adam.StepAt's step size, the dropout key's forward
// count): the kernels read the operand, so the ops are the same.
func TestDeviceOperandsReplay(t *testing.T) {
	const rows, cols = 8, 16
	bufs := map[string]nn.Buf{}
	for name, n := range map[string]int{"w": rows * cols, "g": rows * cols, "m": rows * cols, "v": rows * cols,
		"mask": rows * cols, "x": rows * cols, "dx": rows * cols, "labels": rows, "idx": rows, "dst": rows, "at": 2, "k": 1} {
		bufs[name] = gpu.Alloc(n)
	}
	defer func() {
		for _, b := range bufs {
			gpu.Free(b)
		}
	}()
	at := bufs["at"]
	gpu.Upload(at, []float32{1e-3, 1})
	seg := func(i int) func() {
		return func() {
			h := nn.AdamHyper{StepSize: float32(i), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, BC2Sqrt: float32(i) / 10,
				OneMinusBeta1: 0.1, OneMinusBeta2: 0.001}
			gpu.ClipCoef(bufs["k"], bufs["g"], rows*cols, 0.5, nil)
			gpu.Adam(bufs["w"], bufs["g"], bufs["m"], bufs["v"], rows*cols, h, at, bufs["k"])
			key := nn.RNGKey{Seed: 7, Step: uint32(i)}
			gpu.DropoutMask(bufs["mask"], rows, cols, 0.5, key, 0, at)
			gpu.SampleGumbel(bufs["dst"], bufs["x"], rows, cols, 1, key, bufs["idx"], at)
			gpu.SoftmaxCE(nil, bufs["dx"], bufs["x"], bufs["labels"], rows, cols, 1, float32(i), 0, at)
		}
	}
	st0 := gpu.GraphStats()
	for i := 1; i <= 3; i++ {
		if err := gpu.Record("device operands", seg(i)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	gpu.Sync()
	if d := gpu.statsSince(st0); d != (GraphStats{Warmups: 1, Captures: 1, Replays: 1}) {
		t.Errorf("3 calls differing only in values the kernels read from device memory: %+v; want 1 warm-up, 1 capture, 1 replay", d)
	}
}

// statsSince is what Record did since it reported was.
func (b *Backend) statsSince(was GraphStats) GraphStats {
	now := b.GraphStats()
	return GraphStats{Warmups: now.Warmups - was.Warmups, Captures: now.Captures - was.Captures,
		Replays: now.Replays - was.Replays, Direct: now.Direct - was.Direct}
}
