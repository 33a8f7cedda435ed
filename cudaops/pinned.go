//go:build cuda

package cudaops

// #cgo LDFLAGS: -lcuda -L/usr/local/cuda/lib64
// #cgo CFLAGS: -I/usr/local/cuda/include
// #include <cuda.h>
import "C"

import (
	"fmt"
	"time"
	"unsafe"

	"gorgonia.org/cu"
)

// staging is page-locked host memory that uploads go through so they do not
// stall the stream: from pageable memory cuMemcpyHtoDAsync first waits for the
// stream to drain (an upload in the middle of an MCT update would wait for
// every kernel queued before it), from pinned memory it copies asynchronously.
// gorgonia.org/cu has no page-locked allocation, hence the direct driver calls.
//
// Two buffers are used in turn, each guarded by an event: one is rewritten
// only after the copy from it (two uploads ago) has completed. An MCT update
// uploads its inputs, then, when they pass through the host (MPI that is not
// CUDA-aware), the other views' logits (in two pieces for a view between the
// first and the last), then the feedback weights, and waits
// for the device (a download) at least once between any upload and the one
// after the next, so the copy from the buffer an upload reuses has completed:
// uploads never wait. (The pieces of an upload larger than stageMax
// do wait for each other: that happens once, when features are made resident.)
//
// New allocates both buffers, at stageMax bytes, so that no upload allocates or
// frees page-locked memory: those calls may synchronise with the whole device, and
// with views in one process (train's local transport) one view's could fall inside
// another view's stream capture (graph.go), which a synchronisation of the device
// from another thread can invalidate. Growing buffers also reallocated them in the
// first updates whenever uploads of different sizes took turns.
type staging struct {
	slot [2]stageSlot
	next int
}

type stageSlot struct {
	p    unsafe.Pointer // stageMax bytes
	done cu.Event
	used bool
}

// stageMax is the size of a staging buffer (bytes): a larger upload (a view's
// training features, made resident once) goes in pieces of this size, so that
// page-locked memory stays small instead of growing to the dataset.
const stageMax = 16 << 20

// alloc makes the buffers and their events (New); the caller has called enter.
func (st *staging) alloc() error {
	for i := range st.slot {
		s := &st.slot[i]
		if err := cuErr("cuMemAllocHost", C.cuMemAllocHost(&s.p, C.size_t(stageMax))); err != nil {
			return fmt.Errorf("staging: %d MiB of page-locked memory: %v", stageMax>>20, err)
		}
		ev, err := cu.MakeEvent(cu.DisableTiming)
		if err != nil {
			return fmt.Errorf("staging: create event: %v", err)
		}
		s.done = ev
	}
	return nil
}

// upload copies src to dst (device) through the staging buffers, on stream, in
// pieces of at most stageMax bytes, and returns how long it waited for the device.
// The caller has called enter.
func (st *staging) upload(dst cu.DevicePtr, src unsafe.Pointer, bytes int, stream cu.Stream) (waited time.Duration) {
	for off := 0; off < bytes; off += stageMax {
		waited += st.uploadPiece(dst+cu.DevicePtr(off), unsafe.Add(src, off), min(stageMax, bytes-off), stream)
	}
	return waited
}

// uploadPiece copies bytes ≤ stageMax from src to dst through the next staging buffer.
func (st *staging) uploadPiece(dst cu.DevicePtr, src unsafe.Pointer, bytes int, stream cu.Stream) (waited time.Duration) {
	s := &st.slot[st.next]
	st.next ^= 1
	if s.used {
		t := time.Now()
		check("staging: wait for the copy before the last", s.done.Synchronize())
		waited = time.Since(t)
	}
	copy(unsafe.Slice((*byte)(s.p), bytes), unsafe.Slice((*byte)(src), bytes))
	check("staging: upload", cu.MemcpyHtoDAsync(dst, s.p, int64(bytes), stream))
	check("staging: record", s.done.Record(stream))
	s.used = true
	return waited
}

func (st *staging) free() {
	for i := range st.slot {
		s := &st.slot[i]
		if s.p != nil {
			C.cuMemFreeHost(s.p)
			s.p = nil
		}
		if s.done != (cu.Event{}) {
			cu.DestroyEvent(&s.done)
		}
	}
}
