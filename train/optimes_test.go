package train

import (
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"

	"mct/nn"
)

// opTimedRecorder times like cudaops with TimeOps: every operation queued inside a
// recorded segment after TimeOps counts one microsecond of "device time" under its name
// (the interposer's), so Bench's per-update sums can be checked exactly; every third
// timed segment counts as late, so that count's way to the result is checked too.
type opTimedRecorder struct {
	interposer
	mu       sync.Mutex
	on       bool
	inside   bool
	seconds  map[string]float64
	segments int
	fail     error // TimeOps' error
}

func newOpTimed(fail error) *opTimedRecorder {
	o := &opTimedRecorder{fail: fail}
	o.interposer = interposer{CPU: nn.NewCPU(), through: func(name string, _ int, _ []any, call func()) {
		if o.on && o.inside {
			o.seconds[name] += 1e-6
		}
		call()
	}}
	return o
}

func (o *opTimedRecorder) Record(key string, f func()) error {
	o.inside = true
	f()
	o.inside = false
	if o.on {
		o.segments++
	}
	return nil
}

func (o *opTimedRecorder) TimeOps() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.on, o.seconds = true, map[string]float64{}
	return nil
}

func (o *opTimedRecorder) OpSeconds() (map[string]float64, int, int) {
	return maps.Clone(o.seconds), o.segments, o.segments / 3
}

// TestBenchOpTimes: with OpTimes, Bench reports rank 0's device time per update by
// operation, from the timed updates only (24 products per view and update in the fcnn of
// three layers, 18 of them strided: those that read a block's input, which may be a
// column block of the tape's hcat; 3 segments per update, the late ones as the backend
// counts them); a
// backend whose TimeOps fails fails the bench on every rank instead of leaving the others
// waiting in a collective.
func TestBenchOpTimes(t *testing.T) {
	cfg := Defaults()
	cfg.Device, cfg.Hidden, cfg.Batch, cfg.LabeledBatch = "optimed", []int{8, 8, 8}, 16, 8
	ds := RandomViews([]int{5, 6}, 4, 64, 3)
	const updates = 3
	opened := registerCollecting("optimed", func() *opTimedRecorder { return newOpTimed(nil) })
	res, err := Bench(cfg, ds, BenchOptions{Warmup: 2, Updates: updates, OpTimes: true})
	if err != nil {
		t.Fatal(err)
	}
	timed := 0
	for _, o := range *opened {
		if o.on {
			timed++
		}
	}
	if timed != 1 {
		t.Errorf("%d backends timed their operations, want rank 0's alone", timed)
	}
	if got, strided := res.OpsPerUpdate["Gemm"], res.OpsPerUpdate["GemmStrided"]; got < 5.5e-6 || got > 6.5e-6 ||
		strided < 17.5e-6 || strided > 18.5e-6 || res.OpSegments != 3*updates || res.OpSegmentsLate != updates {
		t.Errorf("Gemm %g and GemmStrided %g s per update over %d segments, %d late; want 6 and 18 µs over %d, %d late",
			got, strided, res.OpSegments, res.OpSegmentsLate, 3*updates, updates)
	}
	if _, ok := res.OpsPerUpdate["Adam"]; !ok || len(res.OpsPerUpdate) < 10 {
		t.Errorf("operations timed: %v", res.OpsPerUpdate)
	}

	registerCollecting("optimes-fail", func() *opTimedRecorder { return newOpTimed(errors.New("no spacer memory")) })
	cfg.Device = "optimes-fail"
	if _, err := Bench(cfg, ds, BenchOptions{Warmup: 1, Updates: 1, OpTimes: true}); err == nil || !strings.Contains(err.Error(), "no spacer memory") {
		t.Errorf("TimeOps failing: error %v", err)
	}
}
