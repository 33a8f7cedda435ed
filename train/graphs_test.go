package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mct/nn"
	"mct/ranks"
)

// fakeRecorder is the CPU backend posing as a backend that records (nn.Recorder), the
// test double of cudaops' CUDA graphs: it runs f directly, logs the keys, fails where
// told, and panics if f does anything a recorded segment must not (wait for the
// device, upload, allocate, order streams by marks), as cudaops does.
type fakeRecorder struct {
	*nn.CPU
	mu     sync.Mutex
	keys   []string
	fail   bool // Record returns an error (after running f, as cudaops does)
	inside bool
}

func (f *fakeRecorder) Record(key string, fn func()) error {
	f.mu.Lock()
	f.keys = append(f.keys, key)
	f.mu.Unlock()
	f.inside = true
	fn()
	f.inside = false
	if f.fail {
		return errors.New("capture refused by the test")
	}
	return nil
}

func (f *fakeRecorder) forbid(what string) {
	if f.inside {
		panic(what + " inside a recorded segment")
	}
}

func (f *fakeRecorder) Download(dst []float32, src nn.Buf) {
	f.forbid("Download")
	f.CPU.Download(dst, src)
}
func (f *fakeRecorder) Upload(dst nn.Buf, src []float32) { f.forbid("Upload"); f.CPU.Upload(dst, src) }
func (f *fakeRecorder) Sync()                            { f.forbid("Sync"); f.CPU.Sync() }
func (f *fakeRecorder) Alloc(n int) nn.Buf               { f.forbid("Alloc"); return f.CPU.Alloc(n) }
func (f *fakeRecorder) Free(b nn.Buf)                    { f.forbid("Free"); f.CPU.Free(b) }
func (f *fakeRecorder) Mark(k int)                       { f.forbid("Mark"); f.CPU.Mark(k) }
func (f *fakeRecorder) After(o nn.Backend, k int)        { f.forbid("After"); f.CPU.After(o, k) }
func (f *fakeRecorder) Dot(x, y nn.Buf, n int) float64 {
	f.forbid("Dot")
	return f.CPU.Dot(x, y, n)
}

// TestRecordedSegments: the MCT update goes through a recording backend as three
// segments per update (A, B, C), keyed by its batch shapes, none of which waits for
// the device, uploads or allocates; the weights equal those of direct calls bit for
// bit. A recorder that fails turns recording off after its first segment, with one
// progress line, and changes no result. MCT_CUDA_GRAPHS=0 and replicas do not record.
func TestRecordedSegments(t *testing.T) {
	cfg := Defaults()
	cfg.Hidden, cfg.Batch, cfg.LabeledBatch, cfg.Dropout, cfg.Seed = []int{8, 8, 8}, 16, 8, 0.1, 3
	ds := RandomViews([]int{5, 6}, 4, 64, 3)
	const updates = 3
	run := func(mk func() nn.Backend) ([]string, []nn.Backend) {
		var mu sync.Mutex
		bes := make([]nn.Backend, 2)
		sums, err := Updates(cfg, ds, updates, func(v int) (nn.Backend, error) {
			mu.Lock()
			defer mu.Unlock()
			bes[v] = mk()
			return bes[v], nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return sums, bes
	}
	want, _ := run(func() nn.Backend { return nn.NewCPU() })

	got, bes := run(func() nn.Backend { return &fakeRecorder{CPU: nn.NewCPU()} })
	if !slices.Equal(got, want) {
		t.Errorf("weights through the recorder %v, direct %v", got, want)
	}
	for v, be := range bes {
		keys := be.(*fakeRecorder).keys
		wantKeys := []string{"mct/A/u16-16/l8-8", "mct/B/u16-16/l8-8", "mct/C/u16-16/l8-8"}
		if !slices.Equal(keys, slices.Concat(slices.Repeat([][]string{wantKeys}, updates)...)) {
			t.Errorf("view %d recorded %v, want %v per update", v, keys, wantKeys)
		}
	}

	got, failed := run(func() nn.Backend { return &fakeRecorder{CPU: nn.NewCPU(), fail: true} })
	if !slices.Equal(got, want) {
		t.Errorf("weights after a failed recording %v, direct %v", got, want)
	}
	for v, be := range failed {
		if keys := be.(*fakeRecorder).keys; len(keys) != 1 {
			t.Errorf("view %d: %d Record calls after the first failed, want none", v, len(keys)-1)
		}
	}
	// The failure is one progress line (rank.warn) per rank, however many updates follow.
	var mu sync.Mutex
	var warnings []string
	err := onLocalRanks(cfg, ds, ranks.Layout{Views: 2, Replicas: 1}, func(int) (nn.Backend, error) {
		return &fakeRecorder{CPU: nn.NewCPU(), fail: true}, nil
	}, func(r *rank) error {
		r.warn = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			warnings = append(warnings, fmt.Sprintf(format, args...))
		}
		r.opt = nn.NewAdam(r.probe, cfg.LR/8)
		rows := allRows(len(ds.TrainLabels))
		for s := 0; s < updates; s++ {
			r.mctUpdate(s, rows[:16], rows[16:24], ds.TrainLabels)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "CUDA graphs off") || !strings.Contains(warnings[1], "CUDA graphs off") {
		t.Errorf("warnings after failed recordings %q, want one per rank saying CUDA graphs are off", warnings)
	}

	t.Setenv("MCT_CUDA_GRAPHS", "0")
	_, bes = run(func() nn.Backend { return &fakeRecorder{CPU: nn.NewCPU()} })
	for v, be := range bes {
		if keys := be.(*fakeRecorder).keys; len(keys) != 0 {
			t.Errorf("view %d recorded %v under MCT_CUDA_GRAPHS=0", v, keys)
		}
	}
}

// TestReplicasDoNotRecord: with data-parallel replicas the segments hold host
// all-reduces, so a rank never records them, even on a backend that could.
func TestReplicasDoNotRecord(t *testing.T) {
	cfg := Defaults()
	cfg.Hidden, cfg.Batch, cfg.LabeledBatch, cfg.MCTLR = []int{8, 8, 8}, 16, 8, 0.01
	ds := RandomViews([]int{5, 6}, 4, 64, 3)
	all := allRows(len(ds.TrainLabels))
	recorders := make([]*fakeRecorder, 4)
	open := func(rank int) (nn.Backend, error) {
		recorders[rank] = &fakeRecorder{CPU: nn.NewCPU()}
		return recorders[rank], nil
	}
	err := onLocalRanks(cfg, ds, ranks.Layout{Views: 2, Replicas: 2}, open, func(r *rank) error {
		r.opt = nn.NewAdam(r.probe, cfg.MCTLR)
		r.mctUpdate(0, all[:cfg.Batch], all[:cfg.LabeledBatch], ds.TrainLabels)
		if be := recorders[r.world.Rank()]; r.rec != nil || len(be.keys) != 0 {
			return fmt.Errorf("rank %d with replicas recorded %v", r.world.Rank(), be.keys)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestRecordedSegmentsExactH: the --hard --exact-h path (a device dot product in B),
// three views, through a recording backend: same weights, nothing inside a segment that
// waits, uploads or allocates.
func TestRecordedSegmentsExactH(t *testing.T) {
	cfg := Defaults()
	cfg.Hidden, cfg.Batch, cfg.LabeledBatch, cfg.Hard, cfg.ExactH = []int{8, 8, 8}, 16, 8, true, true
	ds := RandomViews([]int{5, 6, 7}, 4, 64, 3)
	direct, err := Updates(cfg, ds, 2, func(int) (nn.Backend, error) { return nn.NewCPU(), nil })
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var recs []*fakeRecorder
	recorded, err := Updates(cfg, ds, 2, func(int) (nn.Backend, error) {
		mu.Lock()
		defer mu.Unlock()
		recs = append(recs, &fakeRecorder{CPU: nn.NewCPU()})
		return recs[len(recs)-1], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recorded, direct) {
		t.Errorf("weights through the recorder %v, direct %v", recorded, direct)
	}
	// Without segments the checks above hold trivially: every view must have recorded.
	wantKeys := []string{"mct/A/u16-16/l8-8", "mct/B/u16-16/l8-8", "mct/C/u16-16/l8-8"}
	for v, rec := range recs {
		if !slices.Equal(rec.keys, slices.Concat(wantKeys, wantKeys)) {
			t.Errorf("view %d recorded %v, want %v per update", v, rec.keys, wantKeys)
		}
	}
}

// timedRecorder is a fakeRecorder that times like cudaops: its waits for the "device"
// (Download, Sync: immediate on the CPU) and, after TimeSegments, each segment's run by
// key (on the CPU a segment's device time is its wall time).
type timedRecorder struct {
	fakeRecorder
	on           bool
	seconds      map[string]float64
	waited       float64
	waitedAtTime float64 // waited when TimeSegments was called
}

func (f *timedRecorder) Record(key string, fn func()) error {
	t := time.Now()
	err := f.fakeRecorder.Record(key, fn)
	if f.on {
		f.seconds[key] += time.Since(t).Seconds()
	}
	return err
}

func (f *timedRecorder) Download(dst []float32, src nn.Buf) {
	t := time.Now()
	f.fakeRecorder.Download(dst, src)
	f.waited += time.Since(t).Seconds()
}

func (f *timedRecorder) Sync() {
	t := time.Now()
	f.fakeRecorder.Sync()
	f.waited += time.Since(t).Seconds()
}

func (f *timedRecorder) HostWaitSeconds() float64 { return f.waited }
func (f *timedRecorder) TimeSegments() {
	f.on, f.seconds, f.waitedAtTime = true, map[string]float64{}, f.waited
}
func (f *timedRecorder) SegmentSeconds() map[string]float64 { return maps.Clone(f.seconds) }

// TestBenchSegmentTimes: with SegmentTimes, Bench reports rank 0's recorded segments'
// times per timed update under their names (A, B, C) and its host waits per timed
// update; without it, it turns no timing on.
func TestBenchSegmentTimes(t *testing.T) {
	opened := registerCollecting("timed", func() *timedRecorder { return &timedRecorder{fakeRecorder: fakeRecorder{CPU: nn.NewCPU()}} })
	cfg := Defaults()
	cfg.Device, cfg.Hidden, cfg.Batch, cfg.LabeledBatch = "timed", []int{8, 8, 8}, 16, 8
	ds := RandomViews([]int{5, 6}, 4, 64, 3)
	const updates = 3
	res, err := Bench(cfg, ds, BenchOptions{Warmup: 1, Updates: updates, SegmentTimes: true})
	if err != nil {
		t.Fatal(err)
	}
	var timed []*timedRecorder
	for _, f := range *opened {
		if f.on {
			timed = append(timed, f)
		}
	}
	if len(timed) != 1 || !res.CUDAGraphs {
		t.Fatalf("%d of %d backends timed their segments (want rank 0's alone); segments recorded: %v", len(timed), len(*opened), res.CUDAGraphs)
	}
	f := timed[0]
	var sum float64
	for _, name := range []string{"A", "B", "C"} {
		want := f.seconds["mct/"+name+"/u16-16/l8-8"] / updates
		if got := res.SegmentsPerUpdate[name]; got != want || got <= 0 {
			t.Errorf("segment %s: %g s per update reported, the backend timed %g", name, got, want)
		}
		sum += res.SegmentsPerUpdate[name]
	}
	if len(res.SegmentsPerUpdate) != 3 || sum > res.SecondsPerUpdate {
		t.Errorf("segments %v (sum %g s) of an update of %g s", res.SegmentsPerUpdate, sum, res.SecondsPerUpdate)
	}
	if want := (f.waited - f.waitedAtTime) / updates; res.HostWaitPerUpdate != want || want <= 0 {
		t.Errorf("host wait %g s per update reported, the backend counted %g", res.HostWaitPerUpdate, want)
	}

	*opened = nil
	if res, err = Bench(cfg, ds, BenchOptions{Warmup: 1, Updates: updates}); err != nil {
		t.Fatal(err)
	}
	for _, f := range *opened {
		if f.on {
			t.Errorf("segments timed without SegmentTimes")
		}
	}
	if res.SegmentsPerUpdate != nil || res.HostWaitPerUpdate <= 0 {
		t.Errorf("without SegmentTimes: segments %v, host wait %g s per update", res.SegmentsPerUpdate, res.HostWaitPerUpdate)
	}
}

// callRecorder is a recording backend that compares what cudaops compares: the calls of
// each Record, with every argument, against those of the key's last recording.
type callRecorder struct {
	*countingBackend
	last    map[string][]string
	changed []string // key: the first call that differed from the last recording
	records int
	inARow  map[string]int // the key's changes in a row, up to its latest call
	maxRow  int            // the most changes in a row of any key (cudaops gives up after 4)
}

func newCallRecorder() *callRecorder {
	return &callRecorder{countingBackend: newCounting(false), last: map[string][]string{}, inARow: map[string]int{}}
}

func (r *callRecorder) Record(key string, f func()) error {
	var calls []string
	r.calls = &calls
	f()
	r.calls = nil
	r.records++
	r.inARow[key]++
	if last, ok := r.last[key]; ok && slices.Equal(last, calls) {
		r.inARow[key] = 0
	}
	r.maxRow = max(r.maxRow, r.inARow[key]-1) // a key's first recording is no change
	if last, ok := r.last[key]; ok && !slices.Equal(last, calls) {
		i := 0
		for i < min(len(last), len(calls)) && last[i] == calls[i] {
			i++
		}
		was, now := "(none)", "(none)"
		if i < len(last) {
			was = last[i]
		}
		if i < len(calls) {
			now = calls[i]
		}
		r.changed = append(r.changed, fmt.Sprintf("%s, call %d: %s, then %s", key, i, was, now))
	}
	r.last[key] = calls
	return nil
}

// TestRecordedSegmentsSameCalls: from one update to the next, each recorded segment of
// the MCT step makes exactly the same backend calls with the same arguments (buffers,
// shapes, every scalar), so cudaops replays its graph instead of issuing it anew —
// the values that change per update (RNG steps, Adam's step size, the feedback weights)
// reach the kernels through device operands. With dropout, hard labels and exact h too.
func TestRecordedSegmentsSameCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
	}{
		{"sampled, dropout", func(c *Config) { c.Dropout = 0.1 }},
		{"hard, exact h", func(c *Config) { c.Hard, c.ExactH = true, true }},
	} {
		cfg := Defaults()
		cfg.Hidden, cfg.Batch, cfg.LabeledBatch, cfg.Seed = []int{8, 8, 8}, 16, 8, 3
		tc.set(&cfg)
		var mu sync.Mutex
		var recs []*callRecorder
		_, err := Updates(cfg, RandomViews([]int{5, 6}, 4, 64, 3), 4, func(int) (nn.Backend, error) {
			mu.Lock()
			defer mu.Unlock()
			r := newCallRecorder()
			recs = append(recs, r)
			return r, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for v, r := range recs {
			if len(r.last) != 3 || len(r.last["mct/B/u16-16/l8-8"]) < 20 {
				t.Errorf("%s: view %d recorded %d segments, B with %d calls", tc.name, v, len(r.last), len(r.last["mct/B/u16-16/l8-8"]))
			}
			for _, c := range r.changed {
				t.Errorf("%s: view %d: %s", tc.name, v, c)
			}
		}
	}
}

// TestRunReplaysSegments: in a whole MCT run (train.Run: warmup, MCT epochs with their
// evaluations and restore-best, a smaller last batch) no recorded segment's calls change
// in two recordings in a row, so cudaops replays nearly every segment and never gives up
// on one (which it does after 4 changes in a row).
func TestRunReplaysSegments(t *testing.T) {
	opened := registerCollecting("callrec", newCallRecorder)
	dir, all := synthDir(t)
	cfg := tinyRun(t, "mct", dir, all[:2], 5)
	cfg.Device, cfg.Dropout, cfg.WarmupEpochs, cfg.Patience, cfg.Epochs = "callrec", 0.1, 3, 2, 3
	s, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	recs := *opened
	if len(recs) != 2 || s.Updates < 6 {
		t.Fatalf("%d backends, %d MCT updates; want 2 and several", len(recs), s.Updates)
	}
	if s.CUDAGraphs == nil || !*s.CUDAGraphs {
		t.Errorf("summary: cuda_graphs %s, want true", graphsField(s.CUDAGraphs))
	}
	for v, r := range recs {
		t.Logf("view %d: %d recordings of %d keys over %d updates, %d changes, at most %d in a row", v, r.records, len(r.last), s.Updates, len(r.changed), r.maxRow)
		if r.records != 3*s.Updates || r.maxRow > 1 || len(r.changed) > len(r.last) {
			t.Errorf("view %d: %d recordings of %d keys for %d updates; %d changed, at most %d in a row: %v",
				v, r.records, len(r.last), s.Updates, len(r.changed), r.maxRow, r.changed)
		}
	}
}

// registerCollecting registers the test device name, whose backends mk makes; the list
// it returns holds them in the order they were opened.
func registerCollecting[B nn.Backend](name string, mk func() B) *[]B {
	var mu sync.Mutex
	opened := new([]B)
	RegisterDevice(name, func(int, int, string) (nn.Backend, error) {
		mu.Lock()
		defer mu.Unlock()
		b := mk()
		*opened = append(*opened, b)
		return b, nil
	})
	return opened
}

// TestRunSaysGraphsOffOnAnyRank: when the recording of one rank other than 0 fails (its
// CUDA graphs turn off), the run's output says so.
func TestRunSaysGraphsOffOnAnyRank(t *testing.T) {
	RegisterDevice("failrank1", func(localRank, _ int, _ string) (nn.Backend, error) {
		return &fakeRecorder{CPU: nn.NewCPU(), fail: localRank == 1}, nil
	})
	dir, all := synthDir(t)
	cfg := tinyRun(t, "mct", dir, all[:2], 5)
	cfg.Device, cfg.WarmupEpochs, cfg.Epochs = "failrank1", 2, 1
	var out lockedBuffer
	if _, err := Run(context.Background(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "CUDA graphs off"); n != 1 {
		t.Errorf("%d lines say CUDA graphs are off, want 1; output:\n%s", n, out.String())
	}
	if s := readSummary(t, cfg.Out); s.CUDAGraphs == nil || *s.CUDAGraphs {
		t.Errorf("summary.json: cuda_graphs %s with graphs off on rank 1, want false", graphsField(s.CUDAGraphs))
	}
}

// graphsField is the summary's cuda_graphs as JSON shows it.
func graphsField(on *bool) string {
	if on == nil {
		return "absent"
	}
	return fmt.Sprint(*on)
}

func readSummary(t *testing.T, dir string) Summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// lockedBuffer is a bytes.Buffer that ranks may write to concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
