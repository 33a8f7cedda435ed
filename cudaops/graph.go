//go:build cuda

package cudaops

// #cgo LDFLAGS: -lcuda -L/usr/local/cuda/lib64
// #cgo CFLAGS: -I/usr/local/cuda/include
// #include <cuda.h>
import "C"

import (
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"mct/nn"
)

// CUDA graphs: Record (nn.Recorder) turns a sequence of backend calls that only queue
// work into one graph launch. gorgonia.org/cu has no stream-capture API, hence the
// direct driver calls (cuStreamBeginCapture_v2, cuStreamEndCapture,
// cuGraphInstantiateWithFlags, cuGraphLaunch: in libcuda since CUDA 11.4, unchanged
// through 13).
//
// Record runs its function every time with the backend collecting ops instead of
// issuing them (do), then compares them with the ops recorded under the key: equal
// (same kernels, shapes, pointers and argument values) → one cuGraphLaunch of their
// graph, captured on the stream and instantiated the first time they are equal;
// different or absent → issue them one by one and remember them (their kernels load
// outside any capture: see launchSegment). A graph is therefore never replayed with
// stale arguments, whatever the key; the key only says which recording to compare
// with. A key whose ops change in more than maxRecaptures calls in a row is refused
// (Record returns an error naming the first difference, and the caller stops
// recording): it would never be replayed.

var _ nn.Recorder = (*Backend)(nil)

// maxRecaptures bounds how often in a row one key's ops may change before Record gives
// up on it.
const maxRecaptures = 4

// recording collects the ops of the Record call under way.
type recording struct {
	key string
	ops []op
}

// graph is one recorded segment: its ops and their instantiated graph (nil until the
// ops are seen a second time).
type graph struct {
	ops        []op
	exec       C.CUgraphExec
	recaptures int
}

// GraphStats counts what Record did: Warmups (calls whose ops were new, issued one by
// one and remembered), Captures (graphs captured and instantiated, at the second call
// with the same ops), Replays (launches of a captured graph) and Direct (calls whose ops
// were issued one by one because capturing failed or was refused).
type GraphStats struct {
	Warmups, Captures, Replays, Direct int64
}

// GraphStats reports Record's counts so far.
func (b *Backend) GraphStats() GraphStats { return b.graphStats }

// Record implements nn.Recorder with CUDA graphs (see the comment at the top of
// graph.go). f may only call methods that queue work; Upload, Download, Dot, Sync,
// Alloc, Free and Close panic inside it. On an error f's work has been issued directly.
func (b *Backend) Record(key string, f func()) error {
	if b.rec != nil {
		panic(fmt.Sprintf("cudaops: Record(%q) inside Record(%q)", key, b.rec.key))
	}
	b.rec = &recording{key: key}
	ops := func() []op {
		defer func() { b.rec = nil }() // also when f panics
		f()
		return b.rec.ops
	}()
	return b.replay(key, ops)
}

// replay launches the graph of key if it was recorded from ops (capturing it at the
// second identical call), else issues ops one by one and remembers them, timed on the
// device when TimeSegments is on. With TimeOps on it issues them one by one, each timed
// (optiming.go), and uses no graph. On an error the ops have been issued directly.
func (b *Backend) replay(key string, ops []op) error {
	if len(ops) == 0 {
		return nil
	}
	b.enter()
	defer runtime.UnlockOSThread()
	if b.opTimes.on {
		b.timeSegment(ops)
		return nil
	}
	timed := b.segmentStart(key)
	err := b.launchSegment(key, ops)
	b.segmentEnd(timed)
	return err
}

// launchSegment is replay's launch, capture or direct issue; the context is current.
// Ops seen for the first time (a new key, or a key whose ops changed) are issued
// directly and only remembered: their kernels, cuBLAS's among them, then load outside
// any capture, which drivers before CUDA 12.3 cannot do inside one when modules load
// lazily (the default on Linux since 12.2). The next identical call captures them.
func (b *Backend) launchSegment(key string, ops []op) error {
	g := b.graphs[key]
	if g != nil && slices.Equal(g.ops, ops) {
		g.recaptures = 0
		if g.exec == nil {
			exec, err := b.capture(ops)
			if err != nil {
				b.issueAll(ops)
				b.graphStats.Direct++
				return fmt.Errorf("cudaops: capture segment %q of %d operations: %v", key, len(ops), err)
			}
			g.exec = exec
			b.graphStats.Captures++
		} else {
			b.graphStats.Replays++
		}
		check(fmt.Sprintf("launch graph %q", key), cuErr("cuGraphLaunch", C.cuGraphLaunch(g.exec, b.cstream())))
		b.launches++
		return nil
	}
	recaptures := 0
	if g != nil {
		recaptures = g.recaptures + 1
		diff := firstDiff(b, g.ops, ops)
		b.dropGraph(key)
		if recaptures > maxRecaptures {
			b.issueAll(ops)
			b.graphStats.Direct++
			return fmt.Errorf("cudaops: segment %q changed in %d calls in a row (%s): its graph would never be replayed",
				key, recaptures, diff)
		}
	}
	b.issueAll(ops)
	b.graphStats.Warmups++
	b.graphs[key] = &graph{ops: ops, recaptures: recaptures}
	return nil
}

// issueAll issues ops one by one.
func (b *Backend) issueAll(ops []op) {
	for _, o := range ops {
		b.issueCounted(o)
	}
}

// capture records ops on the stream into a graph and instantiates it. The capture is
// thread-local: another thread's driver calls do not disturb it, and a call from this
// thread that could synchronise (a mistake) makes it fail rather than the results.
func (b *Backend) capture(ops []op) (C.CUgraphExec, error) {
	s := b.cstream()
	if err := cuErr("cuStreamBeginCapture", C.cuStreamBeginCapture(s, C.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)); err != nil {
		return nil, err
	}
	var issueErr error
	for i, o := range ops {
		if err := b.issue(o); err != nil {
			issueErr = fmt.Errorf("operation %d (%s): %v", i, b.describe(o), err)
			break
		}
	}
	// End the capture in every case: the stream stays in capture mode until then.
	var g C.CUgraph
	endErr := cuErr("cuStreamEndCapture", C.cuStreamEndCapture(s, &g))
	if g != nil {
		defer C.cuGraphDestroy(g) // the executable graph does not need it
	}
	if issueErr != nil {
		return nil, issueErr
	}
	if endErr != nil {
		return nil, endErr
	}
	var exec C.CUgraphExec
	if err := cuErr("cuGraphInstantiateWithFlags", C.cuGraphInstantiateWithFlags(&exec, g, 0)); err != nil {
		return nil, err
	}
	return exec, nil
}

// dropGraph destroys key's graph. A graph still running finishes first: the driver
// frees an executable graph in flight when it completes.
func (b *Backend) dropGraph(key string) {
	if g := b.graphs[key]; g != nil {
		if g.exec != nil {
			C.cuGraphExecDestroy(g.exec)
		}
		delete(b.graphs, key)
	}
}

// dropGraphs destroys every graph (Close); the context is current.
func (b *Backend) dropGraphs() {
	for key := range b.graphs {
		b.dropGraph(key)
	}
}

// notRecording panics when a method that cannot be recorded (it waits for the device,
// transfers from the host or allocates) is called inside Record.
func (b *Backend) notRecording(what string) {
	if b.rec != nil {
		panic(fmt.Sprintf("cudaops: %s inside Record(%q): a recorded segment may only queue device work; end the segment before it", what, b.rec.key))
	}
}

func (b *Backend) cstream() C.CUstream { return C.CUstream(unsafe.Pointer(b.stream.C())) }

// firstDiff describes where two op sequences first differ, for Record's error.
func firstDiff(b *Backend, was, now []op) string {
	for i := range min(len(was), len(now)) {
		if was[i] == now[i] {
			continue
		}
		if was[i].kind == now[i].kind && was[i].fn == now[i].fn && was[i].grid == now[i].grid && was[i].block == now[i].block {
			for j := range was[i].args {
				if was[i].args[j] != now[i].args[j] {
					return fmt.Sprintf("operation %d, %s, argument %d: %#x then %#x", i, b.describe(now[i]), j, was[i].args[j], now[i].args[j])
				}
			}
		}
		return fmt.Sprintf("operation %d: %s then %s", i, b.describe(was[i]), b.describe(now[i]))
	}
	return fmt.Sprintf("%d operations then %d", len(was), len(now))
}

func cuErr(what string, r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	var s *C.char
	if C.cuGetErrorName(r, &s) == C.CUDA_SUCCESS && s != nil {
		return fmt.Errorf("%s: %s", what, C.GoString(s))
	}
	return fmt.Errorf("%s: CUresult %d", what, int(r))
}
