package train

import (
	"context"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"mct/nn"
)

// deferredBackend is the CPU backend run as a GPU stream runs: every call that queues
// device work is queued and runs only when the host waits (Download, Sync, Dot) or when
// another backend's queued After needs it, in order. Upload takes its copy of the host
// data at once (cudaops stages it) and writes the buffer in queue order. Mark(k) notes the
// queue's end and After(o, k) queues a wait for o's work up to o's mark, as CUDA events do.
// On it, host code that relies on a call having finished, or a view that reads another's
// buffer without After, sees stale values (and, under -race, a data race), as on a GPU;
// the eager CPU backend hides both.
type deferredBackend struct {
	interposer
	mu    sync.Mutex // guards queue and marks
	queue []func()
	marks [nn.Marks]int
	run   sync.Mutex   // held by the goroutine that runs the queue
	done  atomic.Int64 // queued calls finished so far
}

func newDeferred() *deferredBackend {
	d := &deferredBackend{}
	d.interposer = interposer{CPU: nn.NewCPU(), through: func(_ string, _ int, _ []any, call func()) { d.q(call) }}
	return d
}

func (d *deferredBackend) q(f func()) {
	d.mu.Lock()
	d.queue = append(d.queue, f)
	d.mu.Unlock()
}

// runTo runs the queued calls up to n (exclusive), or waits while another goroutine runs
// them (the other view's host wait, or its After on this backend): it returns once they
// have finished.
func (d *deferredBackend) runTo(n int) {
	for int(d.done.Load()) < n {
		if !d.run.TryLock() {
			runtime.Gosched()
			continue
		}
		for int(d.done.Load()) < n {
			d.mu.Lock()
			f := d.queue[d.done.Load()]
			d.mu.Unlock()
			f()
			d.done.Add(1)
		}
		d.run.Unlock()
	}
}

func (d *deferredBackend) drain() {
	d.mu.Lock()
	n := len(d.queue)
	d.mu.Unlock()
	d.runTo(n)
}

func (d *deferredBackend) Upload(dst nn.Buf, src []float32) {
	c := append([]float32(nil), src...)
	d.q(func() { d.CPU.Upload(dst, c) })
}
func (d *deferredBackend) Download(dst []float32, src nn.Buf) { d.drain(); d.CPU.Download(dst, src) }
func (d *deferredBackend) Sync()                              { d.drain() }
func (d *deferredBackend) Dot(x, y nn.Buf, n int) float64 {
	d.drain()
	return d.CPU.Dot(x, y, n)
}
func (d *deferredBackend) Mark(k int) {
	d.mu.Lock()
	d.marks[k] = len(d.queue)
	d.mu.Unlock()
}
func (d *deferredBackend) After(o nn.Backend, k int) {
	od := o.(*deferredBackend)
	od.mu.Lock()
	n := od.marks[k] // the mark as it is now, as cuStreamWaitEvent takes the event's latest record
	od.mu.Unlock()
	d.q(func() { od.runTo(n) })
}

// TestDeferredSameRun: a whole MCT run (train.Run: warmup with early stopping and
// restore-best, MCT epochs whose teacher logits pass from view to view on the backends,
// evaluations, checkpoints) on backends that run their work only when the host waits, as
// a GPU stream does, ends with the same parameters and accuracies as on the eager CPU
// backend: no host code reads a result before waiting for it, and every copy of another
// view's logits waits for them (peerLogits' marks). Without exchange's After(o, 0) the
// views copy stale logits here, while every test on the eager CPU backend still passes.
// The same holds with the logits and the batches through the host.
func TestDeferredSameRun(t *testing.T) {
	opened := registerCollecting("deferred", newDeferred)
	dir, all := synthDir(t)
	cfg := tinyRun(t, "mct", dir, all[:2], 5)
	cfg.Dropout, cfg.WarmupEpochs, cfg.Patience, cfg.Epochs = 0.1, 4, 2, 3
	want, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Device, cfg.Out = "deferred", t.TempDir()
	got, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(*opened) != 2 || got.LogitsExchange != exchangeBackends || got.Updates < 6 {
		t.Fatalf("%d deferred backends, logits via %q, %d updates: want 2, %q and several",
			len(*opened), got.LogitsExchange, got.Updates, exchangeBackends)
	}
	sameParams(t, "deferred", got, "cpu", want)
	if got.TestAccuracy.Ensemble != want.TestAccuracy.Ensemble {
		t.Errorf("test ensemble %.4f deferred, %.4f eager", got.TestAccuracy.Ensemble, want.TestAccuracy.Ensemble)
	}

	// The paths of MPI without a CUDA-aware library and of features left on the host: the
	// logits and every batch go through host memory (download, then upload).
	t.Setenv("MCT_DEVICE_EXCHANGE", "0")
	t.Setenv("MCT_RESIDENT", "0")
	cfg.Out = t.TempDir()
	host, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if host.LogitsExchange != exchangeHost {
		t.Fatalf("logits via %q under MCT_DEVICE_EXCHANGE=0, want %q", host.LogitsExchange, exchangeHost)
	}
	sameParams(t, "deferred through the host", host, "cpu", want)
}
