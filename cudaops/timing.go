//go:build cuda

package cudaops

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"gorgonia.org/cu"
)

// Where an update's time goes, for `mct bench` on a GPU. The host's waits for the
// device (Download, Sync, Dot, a staging buffer still in use) are always counted
// (HostWaitSeconds): with the update bound by the device the host waits most of
// the time, with it bound by launches or host work it hardly waits. With
// TimeSegments on, each segment Record launches is also timed on the device, by a
// pair of timing events around it (SegmentSeconds): the sum against the wall time
// is how busy the stream was.

// segmentTimer is TimeSegments' state: the events and totals by Record key.
type segmentTimer struct {
	on  bool
	key map[string]*segmentTime
}

// segmentTime is one key's events around its latest launch and its total so far.
type segmentTime struct {
	start, end cu.Event
	pending    bool // recorded, not yet added to seconds
	seconds    float64
}

// TimeSegments turns on the device timing of every later Record call.
func (b *Backend) TimeSegments() {
	b.segs.on = true
	if b.segs.key == nil {
		b.segs.key = map[string]*segmentTime{}
	}
}

// SegmentSeconds reports the device time of the segments recorded since
// TimeSegments, in seconds by Record key; it waits for the last of them to finish.
func (b *Backend) SegmentSeconds() map[string]float64 {
	b.notRecording("SegmentSeconds")
	b.enter()
	defer runtime.UnlockOSThread()
	out := map[string]float64{}
	for key, s := range b.segs.key {
		b.readSegment(s)
		out[key] = s.seconds
	}
	return out
}

// HostWaitSeconds reports how long the host has waited for this backend's device.
func (b *Backend) HostWaitSeconds() float64 { return b.waited.Seconds() }

// synchronize waits for the stream, counting the wait; the caller has called enter.
func (b *Backend) synchronize(what string) {
	t := time.Now()
	check(what, b.stream.Synchronize())
	b.waited += time.Since(t)
}

// download copies bytes from the device at src to the host at dst once the work queued
// before it has run, counting the wait; the caller has called enter. To pageable memory
// (Go's) cuMemcpyDtoHAsync itself returns only when the copy has completed, so the wait
// lies inside that call, not in the synchronize after it (CUDA driver API, "API
// synchronization behavior"): timing only the synchronize would count none of it.
func (b *Backend) download(dst unsafe.Pointer, src cu.DevicePtr, bytes int, what string) {
	t := time.Now()
	check(what, cu.MemcpyDtoHAsync(dst, src, int64(bytes), b.stream))
	check(what+": synchronize", b.stream.Synchronize())
	b.waited += time.Since(t)
}

// segmentStart records key's start event before its launch (nil when timing is
// off); the context is current. The events are not counted in Launches: they
// measure the update and are no part of it.
func (b *Backend) segmentStart(key string) *segmentTime {
	if !b.segs.on {
		return nil
	}
	s := b.segs.key[key]
	if s == nil {
		s = &segmentTime{}
		var err error
		if s.start, err = cu.MakeEvent(cu.DefaultEvent); err == nil {
			s.end, err = cu.MakeEvent(cu.DefaultEvent)
		}
		check("segment timing event", err)
		b.segs.key[key] = s
	}
	// The key's previous launch has long finished (a host wait of the update lies
	// between), so this reads its time without waiting.
	b.readSegment(s)
	check(fmt.Sprintf("segment %q: record the start event", key), s.start.Record(b.stream))
	return s
}

// segmentEnd records the end event after a segment's launch.
func (b *Backend) segmentEnd(s *segmentTime) {
	if s == nil {
		return
	}
	check("segment timing: record the end event", s.end.Record(b.stream))
	s.pending = true
}

// readSegment adds the time between s's events, once both have happened.
func (b *Backend) readSegment(s *segmentTime) {
	if !s.pending {
		return
	}
	t := time.Now()
	check("segment timing: wait for the end event", s.end.Synchronize())
	b.waited += time.Since(t)
	ms, err := s.start.Elapsed(s.end)
	check("segment timing: elapsed time", err)
	s.seconds += ms / 1e3
	s.pending = false
}

// dropSegmentTimes destroys the timing events (Close); the context is current.
func (b *Backend) dropSegmentTimes() {
	for key, s := range b.segs.key {
		for _, ev := range []*cu.Event{&s.start, &s.end} {
			if *ev != (cu.Event{}) {
				cu.DestroyEvent(ev)
			}
		}
		delete(b.segs.key, key)
	}
}
