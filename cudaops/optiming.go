//go:build cuda

package cudaops

import (
	"fmt"
	"maps"
	"runtime"

	"gorgonia.org/cu"

	"mct/cudaops/cudalib"
)

// Per-operation device time, for `mct bench --op-times` on a GPU: which kernels an
// update's device time goes to. With TimeOps on, Record issues a segment's operations
// one by one instead of as a graph, each between two timing events, behind a spacer —
// cuBLAS products on scratch memory, neither timed nor counted — long enough for the
// host to queue the whole segment before the GPU reaches it. The events then time the
// operations back to back, as a graph runs them, rather than the host's launch gaps. A
// segment whose spacer had already finished when its last operation was queued is
// counted late: its operations' times may include such gaps.

// opTimer is TimeOps' state.
type opTimer struct {
	on       bool
	spacer   [3]cu.DevicePtr // the spacer product's operands
	spacerAt cu.Event        // recorded after the spacer
	free     []cu.Event      // timing events to reuse
	pending  []timedOp       // issued, not yet read
	seconds  map[string]float64
	segments int
	late     int
}

// timedOp is one operation between its two events.
type timedOp struct {
	name       string
	start, end cu.Event
}

// The spacer: spacerReps plain fp32 products of spacerN³ (SGEMM, whatever the backend's
// precision: the call the GPU tests run), 2.2 TFLOP, 35–45 ms on an H100 or H200; the
// largest segment (~85 operations per view) takes the host about 1 ms to queue.
const (
	spacerN    = 4096
	spacerReps = 16
)

// TimeOps turns on the per-operation timing of every later Record call (graphs are then
// not used). It allocates the spacer's 200 MB.
func (b *Backend) TimeOps() error {
	b.notRecording("TimeOps")
	b.enter()
	defer runtime.UnlockOSThread()
	if b.opTimes.on {
		return nil
	}
	for i := range b.opTimes.spacer {
		p, err := cu.MemAlloc(4 * spacerN * spacerN)
		if err != nil {
			b.dropOpTimes()
			return fmt.Errorf("cudaops: TimeOps: spacer memory: %v", err)
		}
		b.opTimes.spacer[i] = p
		// Finite operands: the spacer's speed must not depend on what memory held.
		check("TimeOps: fill the spacer", cu.MemsetD32Async(p, uint(0x3c000000), spacerN*spacerN, b.stream))
	}
	var err error
	if b.opTimes.spacerAt, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		b.dropOpTimes()
		return fmt.Errorf("cudaops: TimeOps: %v", err)
	}
	b.opTimes.on, b.opTimes.seconds = true, map[string]float64{}
	return nil
}

// OpSeconds reports the device time of the operations Record issued since TimeOps, in
// seconds by operation (kernel name, or GEMM and its m×n×k), the segments timed and how
// many of them were late; it waits for the last of them to finish.
func (b *Backend) OpSeconds() (seconds map[string]float64, segments, late int) {
	b.notRecording("OpSeconds")
	b.enter()
	defer runtime.UnlockOSThread()
	b.synchronize("OpSeconds")
	for _, t := range b.opTimes.pending {
		ms, err := t.start.Elapsed(t.end)
		check("operation timing: elapsed time", err)
		b.opTimes.seconds[t.name] += ms / 1e3
		b.opTimes.free = append(b.opTimes.free, t.start, t.end)
	}
	b.opTimes.pending = b.opTimes.pending[:0]
	return maps.Clone(b.opTimes.seconds), b.opTimes.segments, b.opTimes.late
}

// timeSegment issues ops behind the spacer, each between two timing events; the context
// is current.
func (b *Backend) timeSegment(ops []op) {
	p := b.opTimes.spacer
	for i := 0; i < spacerReps; i++ {
		check("operation timing: spacer", b.blas.GemmRowMajor(false, false, spacerN, spacerN, spacerN, 1,
			uintptr(p[0]), cudalib.R32F, spacerN, uintptr(p[1]), cudalib.R32F, spacerN,
			0, uintptr(p[2]), cudalib.R32F, spacerN, cudalib.Compute32F))
	}
	check("operation timing: spacer event", b.opTimes.spacerAt.Record(b.stream))
	for _, o := range ops {
		start, end := b.timingEvent(), b.timingEvent()
		check("operation timing: start event", start.Record(b.stream))
		b.issueCounted(o)
		check("operation timing: end event", end.Record(b.stream))
		b.opTimes.pending = append(b.opTimes.pending, timedOp{name: b.describe(o), start: start, end: end})
	}
	b.opTimes.segments++
	switch err := b.opTimes.spacerAt.Query(); {
	case err == nil: // the GPU had caught up with the host
		b.opTimes.late++
	case err != cu.NotReady:
		check("operation timing: query the spacer event", err)
	}
}

// timingEvent is a timing event from the free list, or a new one.
func (b *Backend) timingEvent() cu.Event {
	if n := len(b.opTimes.free); n > 0 {
		e := b.opTimes.free[n-1]
		b.opTimes.free = b.opTimes.free[:n-1]
		return e
	}
	e, err := cu.MakeEvent(cu.DefaultEvent)
	check("operation timing: event", err)
	return e
}

// dropOpTimes frees the spacer and destroys the events (Close, a failed TimeOps); the
// context is current.
func (b *Backend) dropOpTimes() {
	for i, p := range b.opTimes.spacer {
		if p != 0 {
			cu.MemFree(p)
			b.opTimes.spacer[i] = 0
		}
	}
	events := b.opTimes.free
	for _, t := range b.opTimes.pending {
		events = append(events, t.start, t.end)
	}
	if b.opTimes.spacerAt != (cu.Event{}) {
		events = append(events, b.opTimes.spacerAt)
	}
	for i := range events {
		cu.DestroyEvent(&events[i])
	}
	b.opTimes = opTimer{}
}
