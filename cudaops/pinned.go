//go:build cuda

package cudaops

// #cgo LDFLAGS: -lcuda -L/usr/local/cuda/lib64
// #cgo CFLAGS: -I/usr/local/cuda/include
// #include <cuda.h>
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// staging is page-locked host memory for small uploads that must not stall
// the stream: from pageable memory cuMemcpyHtoDAsync first waits for the
// stream to drain, pinned memory copies asynchronously. gorgonia.org/cu has no
// page-locked allocation, hence the direct driver calls. An event guards the
// buffer: it is rewritten only after the previous copy from it completed.
type staging struct {
	p    unsafe.Pointer
	n    int // bytes
	done cu.Event
	used bool
}

// upload copies src to dst (device) through the staging buffer, on stream.
// The caller has called enter.
func (s *staging) upload(dst cu.DevicePtr, src unsafe.Pointer, bytes int, stream cu.Stream) {
	if s.used {
		check("staging: wait for the previous copy", s.done.Synchronize())
	}
	if bytes > s.n {
		if s.p != nil {
			C.cuMemFreeHost(s.p)
		}
		if r := C.cuMemAllocHost(&s.p, C.size_t(bytes)); r != C.CUDA_SUCCESS {
			panic(fmt.Sprintf("cudaops: cuMemAllocHost(%d): CUresult %d", bytes, int(r)))
		}
		s.n = bytes
	}
	if s.done == (cu.Event{}) {
		ev, err := cu.MakeEvent(cu.DisableTiming)
		check("staging event", err)
		s.done = ev
	}
	copy(unsafe.Slice((*byte)(s.p), bytes), unsafe.Slice((*byte)(src), bytes))
	check("staging: upload", cu.MemcpyHtoDAsync(dst, s.p, int64(bytes), stream))
	check("staging: record", s.done.Record(stream))
	s.used = true
}

func (s *staging) free() {
	if s.p != nil {
		C.cuMemFreeHost(s.p)
		s.p = nil
	}
	if s.done != (cu.Event{}) {
		cu.DestroyEvent(&s.done)
	}
}
