package train

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"mct/nn"
	"mct/ranks"
)

// countingBackend is the CPU backend with a tally of what a GPU backend would pay for:
// host waits (every method that returns only after the device's queued work is done, or
// that returns a host value) and launches (the stream operations cudaops issues for each
// call: a kernel, a cuBLAS GEMM, a memset or a device copy). Uploads are counted apart,
// with their bytes: cudaops stages them through pinned memory, so they queue without
// waiting, but every byte crosses the host-device link. While calls is set, it also
// logs every call that queues device work with its arguments (log).
type countingBackend struct {
	interposer
	mu                       sync.Mutex
	waits, launches, uploads int
	upBytes                  int64
	on                       bool
	waitNames                []string
	calls                    *[]string
}

// newCounting returns a countingBackend, counting from the start if on.
func newCounting(on bool) *countingBackend {
	c := &countingBackend{on: on}
	c.interposer = interposer{CPU: nn.NewCPU(), through: func(name string, launches int, args []any, call func()) {
		c.count(0, launches, "")
		c.log(name, args...)
		call()
	}}
	return c
}

func (c *countingBackend) count(waits, launches int, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return
	}
	c.waits += waits
	c.launches += launches
	if waits > 0 {
		c.waitNames = append(c.waitNames, name)
	}
}

// log appends a call to calls, if set: its name and arguments, buffers by address and
// length (their contents change, their identity must not), everything else by value —
// what cudaops compares to replay a recorded segment.
func (c *countingBackend) log(name string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		return
	}
	var b strings.Builder
	b.WriteString(name)
	for _, a := range args {
		if h, ok := a.(nn.HostBuf); ok {
			fmt.Fprintf(&b, " %p:%d", unsafe.SliceData(h), len(h))
		} else {
			fmt.Fprintf(&b, " %+v", a)
		}
	}
	*c.calls = append(*c.calls, b.String())
}

func (c *countingBackend) Upload(dst nn.Buf, src []float32) {
	c.mu.Lock()
	if c.on {
		c.uploads++
		c.upBytes += 4 * int64(len(src))
	}
	c.mu.Unlock()
	c.CPU.Upload(dst, src)
}

func (c *countingBackend) Download(dst []float32, src nn.Buf) {
	c.count(1, 0, fmt.Sprintf("Download(%d)", len(dst)))
	c.CPU.Download(dst, src)
}

func (c *countingBackend) Sync() { c.count(1, 0, "Sync"); c.CPU.Sync() }

func (c *countingBackend) Dot(x, y nn.Buf, n int) float64 {
	c.count(1, 2, "Dot") // a partial-sum kernel and a total kernel, then the read
	return c.CPU.Dot(x, y, n)
}

// Mark and After are an event record and a stream wait on a GPU.
func (c *countingBackend) Mark(k int) { c.count(0, 1, ""); c.CPU.Mark(k) }
func (c *countingBackend) After(o nn.Backend, k int) {
	c.count(0, 1, "")
	c.CPU.After(o, k)
}

// TestTestBackendsCoverAll: countingBackend counts, and deferredBackend queues, every
// nn.Backend and nn.Sharer method that queues device work or waits, by its own method or
// interposer's; one left to *nn.CPU would run uncounted, or at once, and the tests built
// on them would miss it. Name, Alloc, Free, View and Shares launch nothing in a step
// (buffers are allocated before it).
func TestTestBackendsCoverAll(t *testing.T) {
	methods := map[string][]string{} // by receiver type
	for _, file := range []string{"syncs_test.go", "interpose_test.go", "deferred_test.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil {
				if star, ok := fd.Recv.List[0].Type.(*ast.StarExpr); ok {
					recv := fmt.Sprint(star.X)
					methods[recv] = append(methods[recv], fd.Name.Name)
				}
			}
		}
	}
	for _, backend := range []string{"countingBackend", "deferredBackend"} {
		covered := append(methods[backend], methods["interposer"]...)
		for _, iface := range []reflect.Type{reflect.TypeFor[nn.Backend](), reflect.TypeFor[nn.Sharer]()} {
			for i := range iface.NumMethod() {
				name := iface.Method(i).Name
				if !slices.Contains([]string{"Name", "Alloc", "Free", "View", "Shares"}, name) && !slices.Contains(covered, name) {
					t.Errorf("%s does not cover %s.%s: override it (or interposer)", backend, iface, name)
				}
			}
		}
	}
}

// countUpdate runs two MCT updates of every view (V views × R replicas, local transport)
// on counting backends and returns every rank's tally of the second (by world rank).
func countUpdate(t *testing.T, cfg Config, V, R int) []*countingBackend {
	t.Helper()
	dims := []int{5, 6, 7, 4}[:V]
	ds := RandomViews(dims, 4, 64, 3)
	all := allRows(len(ds.TrainLabels))
	counters := make([]*countingBackend, V*R)
	open := func(rank int) (nn.Backend, error) {
		counters[rank] = newCounting(false)
		return counters[rank], nil
	}
	err := onLocalRanks(cfg, ds, ranks.Layout{Views: V, Replicas: R}, open, func(r *rank) error {
		be := counters[r.world.Rank()]
		r.opt = nn.NewAdam(r.probe, cfg.MCTLR)
		r.mctUpdate(0, all[:cfg.Batch], all[cfg.Batch:cfg.Batch+cfg.LabeledBatch], ds.TrainLabels)
		be.on = true
		r.mctUpdate(1, all[8:8+cfg.Batch], all[:cfg.LabeledBatch], ds.TrainLabels)
		be.on = false
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counters
}

// TestHostWaitsPerUpdate counts what one MCT update makes the host wait for. With one
// replica per view and the views in one process (the local transport: the logits go
// from backend to backend, peerLogits) the step waits once, for one small download of
// the scalars the host needs (losses, the exact-h dot product, pseudo-label hits,
// agreement); with the logits through the host (MPI; here MCT_DEVICE_EXCHANGE=0) it
// also waits for its teacher logits, which the all-gather needs on the host, and
// uploads the others'. A regression (a loss, a norm or a count read back on its own)
// fails here. It also counts the bytes uploaded, with the view's features resident on
// the backend (the default where they fit) and without (MCT_RESIDENT=0): resident, the
// batch is uploaded as row indices, so the features of its rows, 4·dim bytes per row,
// no longer cross.
func TestHostWaitsPerUpdate(t *testing.T) {
	base := Config{Arch: "fcnn", Hidden: []int{8, 8, 8}, Temperature: 1, Seed: 7, Batch: 16, LabeledBatch: 8,
		MCTLR: 0.01, Clip: 1, PseudoT: 1}
	for _, tc := range []struct {
		name       string
		V, R       int
		hard, xh   bool
		dropout    float32
		wantWaits  int
		wantUpload int
	}{
		// Two uploads: the batch with its per-update values, the teacher's feedback
		// weights.
		{name: "V2", V: 2, R: 1, wantWaits: 1, wantUpload: 2},
		{name: "V3-hard-exact", V: 3, R: 1, hard: true, xh: true, wantWaits: 1, wantUpload: 2},
		{name: "V4-dropout", V: 4, R: 1, dropout: 0.1, wantWaits: 1, wantUpload: 2},
		// Replicas all-reduce through the host: each BatchNorm sum (2 BN layers, in 3
		// Train forwards and 3 backwards: 12) and each gradient (student and teacher: 2)
		// is a download and an upload, besides the wait and 2 uploads of the step: 15
		// and 2 + 14.
		{name: "V2-2replicas", V: 2, R: 2, wantWaits: 15, wantUpload: 16},
	} {
		for _, viaHost := range []bool{false, true} {
			name := tc.name
			if viaHost {
				name += "-logits-via-host"
			}
			t.Run(name, func(t *testing.T) {
				if viaHost {
					t.Setenv("MCT_DEVICE_EXCHANGE", "0")
				}
				cfg := base
				cfg.Hard, cfg.ExactH, cfg.Dropout = tc.hard, tc.xh, tc.dropout
				tallies := countUpdate(t, cfg, tc.V, tc.R)
				c := tallies[0]
				t.Setenv("MCT_RESIDENT", "0")
				host := countUpdate(t, cfg, tc.V, tc.R)[0]
				t.Logf("%s: %d host waits %v, %d uploads (%d B; %d B with the host gather), %d launches per update",
					name, c.waits, c.waitNames, c.uploads, c.upBytes, host.upBytes, c.launches)
				// Through the host: a wait for this view's logits and an upload of the others'.
				wantWaits, wantUploads := tc.wantWaits, tc.wantUpload
				if viaHost {
					wantWaits, wantUploads = wantWaits+1, wantUploads+1
				}
				for _, c := range []*countingBackend{c, host} {
					if c.waits != wantWaits {
						t.Errorf("%d host waits per update (%v), want %d", c.waits, c.waitNames, wantWaits)
					}
					if c.uploads != wantUploads {
						t.Errorf("%d uploads per update, want %d", c.uploads, wantUploads)
					}
				}
				// Rank 0 (view 0, 5 features) holds n unlabeled and nl labeled rows of the batch.
				const dim, classes, dyn = 5, 4, 8
				n, nl := 16/tc.R, 8/tc.R
				if d := host.upBytes - c.upBytes; d != int64(4*(n+nl)*dim) {
					t.Errorf("the host gather uploads %d B more than resident features, want the rows' features, %d B", d, 4*(n+nl)*dim)
				}
				if tc.R > 1 {
					return
				}
				// The batch's indices, labels and true labels and the per-update values; the
				// feedback weights; through the host, the other views' gathered logits (this
				// view's stay on the device).
				want := int64(4*(2*n+2*nl+dyn) + 4*tc.V)
				if viaHost {
					want += int64(4 * (tc.V - 1) * n * classes)
				}
				if c.upBytes != want {
					t.Errorf("%d B uploaded per update with resident features, want %d", c.upBytes, want)
				}
				// Through the host, a view between the first and the last uploads the
				// others' logits in two pieces, around its own, and waits no more.
				if tc.V > 2 {
					wantMid := wantUploads
					if viaHost {
						wantMid++
					}
					if mid := tallies[1]; mid.uploads != wantMid || mid.upBytes != c.upBytes || mid.waits != wantWaits {
						t.Errorf("view 1: %d uploads of %d B and %d waits per update, want %d of %d B and %d",
							mid.uploads, mid.upBytes, mid.waits, wantMid, c.upBytes, wantWaits)
					}
				}
			})
		}
	}
}

// Launches reports the launches counted so far, as cudaops.Backend does.
func (c *countingBackend) Launches() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(c.launches)
}

// TestBenchLaunchesPerUpdate: Bench reports a counting backend's launches and upload
// bytes per update, the numbers TestHostWaitsPerUpdate's tally gives for the same update.
func TestBenchLaunchesPerUpdate(t *testing.T) {
	RegisterDevice("counting", func(int, int, string) (nn.Backend, error) {
		return newCounting(true), nil
	})
	cfg := Defaults()
	cfg.Device, cfg.Hidden, cfg.Batch, cfg.LabeledBatch = "counting", []int{8, 8, 8}, 16, 8
	res, err := Bench(cfg, RandomViews([]int{5, 6}, 4, 64, 3), BenchOptions{Warmup: 1, Updates: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg.MCTLR = cfg.LR / 8
	want := countUpdate(t, cfg, 2, 1)[0]
	if res.LaunchesPerUpdate != float64(want.launches) {
		t.Errorf("bench reports %g launches per update, the counted update has %d", res.LaunchesPerUpdate, want.launches)
	}
	if res.UploadBytesPerUpdate != float64(want.upBytes) || !res.FeaturesResident {
		t.Errorf("bench reports %g B uploaded per update (features resident: %v), the counted update %d B",
			res.UploadBytesPerUpdate, res.FeaturesResident, want.upBytes)
	}
}
