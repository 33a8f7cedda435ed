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
	*nn.CPU
	mu    sync.Mutex // guards queue and marks
	queue []func()
	marks [nn.Marks]int
	run   sync.Mutex   // held by the goroutine that runs the queue
	done  atomic.Int64 // queued calls finished so far
}

func newDeferred() *deferredBackend { return &deferredBackend{CPU: nn.NewCPU()} }

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

func (d *deferredBackend) Copy(dst, src nn.Buf, n int) { d.q(func() { d.CPU.Copy(dst, src, n) }) }
func (d *deferredBackend) Fill(x nn.Buf, n int, v float32) {
	d.q(func() { d.CPU.Fill(x, n, v) })
}
func (d *deferredBackend) GatherRows(dst, src nn.Buf, cols int, idx nn.Buf, n int) {
	d.q(func() { d.CPU.GatherRows(dst, src, cols, idx, n) })
}
func (d *deferredBackend) Gemm(tA, tB bool, m, n, k int, alpha float32, a, b nn.Buf, beta float32, c nn.Buf) {
	d.q(func() { d.CPU.Gemm(tA, tB, m, n, k, alpha, a, b, beta, c) })
}
func (d *deferredBackend) CopyCols(dst nn.Buf, dstCols, dstOff int, src nn.Buf, srcCols, srcOff int, rows, cols int, beta float32) {
	d.q(func() { d.CPU.CopyCols(dst, dstCols, dstOff, src, srcCols, srcOff, rows, cols, beta) })
}
func (d *deferredBackend) FoldCols(dst nn.Buf, dstCols int, src nn.Buf, srcCols, rows, off int) {
	d.q(func() { d.CPU.FoldCols(dst, dstCols, src, srcCols, rows, off) })
}
func (d *deferredBackend) UnfoldCols(dst nn.Buf, dstCols int, src nn.Buf, srcCols, rows, off int, beta float32) {
	d.q(func() { d.CPU.UnfoldCols(dst, dstCols, src, srcCols, rows, off, beta) })
}
func (d *deferredBackend) Axpy(y nn.Buf, alpha float32, x nn.Buf, n int) {
	d.q(func() { d.CPU.Axpy(y, alpha, x, n) })
}
func (d *deferredBackend) Scale(x nn.Buf, n int, alpha float32) {
	d.q(func() { d.CPU.Scale(x, n, alpha) })
}
func (d *deferredBackend) Mul(x, y nn.Buf, n int) { d.q(func() { d.CPU.Mul(x, y, n) }) }
func (d *deferredBackend) DotTo(dst, x, y nn.Buf, n int) {
	d.q(func() { d.CPU.DotTo(dst, x, y, n) })
}
func (d *deferredBackend) Mean(dst, x nn.Buf, n int) { d.q(func() { d.CPU.Mean(dst, x, n) }) }
func (d *deferredBackend) ClipNorm(x nn.Buf, n int, maxNorm float32, norm nn.Buf) {
	d.q(func() { d.CPU.ClipNorm(x, n, maxNorm, norm) })
}
func (d *deferredBackend) CountEqual(dst, a, b nn.Buf, rows, cols int) {
	d.q(func() { d.CPU.CountEqual(dst, a, b, rows, cols) })
}
func (d *deferredBackend) MeanOthers(dst, src nn.Buf, views, n int) {
	d.q(func() { d.CPU.MeanOthers(dst, src, views, n) })
}
func (d *deferredBackend) AddBiasLeakyReLU(x, bias nn.Buf, rows, cols int, slope float32) {
	d.q(func() { d.CPU.AddBiasLeakyReLU(x, bias, rows, cols, slope) })
}
func (d *deferredBackend) LeakyReLUBackward(dy, y nn.Buf, n int, slope float32) {
	d.q(func() { d.CPU.LeakyReLUBackward(dy, y, n, slope) })
}
func (d *deferredBackend) ColSums(dst nn.Buf, x nn.Buf, rows, cols int, beta float32) {
	d.q(func() { d.CPU.ColSums(dst, x, rows, cols, beta) })
}
func (d *deferredBackend) BNStats(stats, x, runMean nn.Buf, rows, cols int) {
	d.q(func() { d.CPU.BNStats(stats, x, runMean, rows, cols) })
}
func (d *deferredBackend) BNMoments(mean, variance, runMean, runVar, stats nn.Buf, cols int, momentum float32) {
	d.q(func() { d.CPU.BNMoments(mean, variance, runMean, runVar, stats, cols, momentum) })
}
func (d *deferredBackend) BNNormalize(y, x, mean, variance, gamma, beta nn.Buf, rows, cols int, eps float32) {
	d.q(func() { d.CPU.BNNormalize(y, x, mean, variance, gamma, beta, rows, cols, eps) })
}
func (d *deferredBackend) BNBackwardStats(stats, dgamma, dbeta, dy, x, mean, variance nn.Buf, rows, cols int, eps float32) {
	d.q(func() { d.CPU.BNBackwardStats(stats, dgamma, dbeta, dy, x, mean, variance, rows, cols, eps) })
}
func (d *deferredBackend) BNBackward(dx, dy, x, mean, variance, gamma, stats nn.Buf, rows, cols int, eps, slope float32) {
	d.q(func() { d.CPU.BNBackward(dx, dy, x, mean, variance, gamma, stats, rows, cols, eps, slope) })
}
func (d *deferredBackend) DropoutMask(mask nn.Buf, rows, cols int, p float32, key nn.RNGKey, rowBase uint32, stepAt nn.Buf) {
	d.q(func() { d.CPU.DropoutMask(mask, rows, cols, p, key, rowBase, stepAt) })
}
func (d *deferredBackend) SoftmaxCE(loss, dx, x, labels nn.Buf, rows, cols int, invT, scale, beta float32, scaleAt nn.Buf) {
	d.q(func() { d.CPU.SoftmaxCE(loss, dx, x, labels, rows, cols, invT, scale, beta, scaleAt) })
}
func (d *deferredBackend) Softmax(y, x nn.Buf, rows, cols int, invT float32) {
	d.q(func() { d.CPU.Softmax(y, x, rows, cols, invT) })
}
func (d *deferredBackend) Argmax(dst, x nn.Buf, rows, cols int) {
	d.q(func() { d.CPU.Argmax(dst, x, rows, cols) })
}
func (d *deferredBackend) SampleGumbel(dst, x nn.Buf, rows, cols int, invT float32, key nn.RNGKey, rowIndex, stepAt nn.Buf) {
	d.q(func() { d.CPU.SampleGumbel(dst, x, rows, cols, invT, key, rowIndex, stepAt) })
}
func (d *deferredBackend) Adam(w, g, m, v nn.Buf, n int, h nn.AdamHyper, sched nn.Buf) {
	d.q(func() { d.CPU.Adam(w, g, m, v, n, h, sched) })
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
