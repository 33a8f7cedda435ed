package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"mct/nn"
	"mct/ranks"
)

// TestResidentSameRun: a whole run (warmup, MCT epochs, evaluation) with each view's
// features resident on the backend, batches gathered there by index, gives the
// parameters and accuracies of the host gather (MCT_RESIDENT=0) bit for bit.
func TestResidentSameRun(t *testing.T) {
	dir, all := synthDir(t)
	// The CPU backend (it still adopts the features) counting its gathers, so that a run
	// that never gathered from resident features cannot pass as the same run.
	var gathers atomic.Int64
	RegisterDevice("cpu-gathers", func(int, int, string) (nn.Backend, error) {
		return &gatherCounter{CPU: nn.NewCPU(), n: &gathers}, nil
	})
	run := func() *Summary {
		cfg := tinyRun(t, "mct", dir, all[:2], 5)
		cfg.Device, cfg.Dropout = "cpu-gathers", 0.1
		cfg.WarmupEpochs, cfg.Patience, cfg.Epochs = 3, 2, 2
		s, err := Run(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	res := run()
	resGathers := gathers.Swap(0)
	t.Setenv("MCT_RESIDENT", "0")
	host := run()
	if res.Updates == 0 {
		t.Fatal("no MCT updates ran")
	}
	if resGathers == 0 || gathers.Load() != 0 {
		t.Fatalf("%d gathers on the backend with resident features, %d without; want some and none", resGathers, gathers.Load())
	}
	sameParams(t, "resident features", res, "the host gather", host)
	if res.TestAccuracy.Ensemble != host.TestAccuracy.Ensemble {
		t.Errorf("test ensemble accuracy %g resident, %g with the host gather", res.TestAccuracy.Ensemble, host.TestAccuracy.Ensemble)
	}
}

// gatherCounter is the CPU backend counting its GatherRows calls in n.
type gatherCounter struct {
	*nn.CPU
	n *atomic.Int64
}

func (g *gatherCounter) GatherRows(dst, src nn.Buf, cols int, idx nn.Buf, n int) {
	g.n.Add(1)
	g.CPU.GatherRows(dst, src, cols, idx, n)
}

// TestResidentReplicas: with data-parallel replicas (2 views × 2), supervised steps, MCT
// updates and evaluation logits on resident features equal the host gather's.
func TestResidentReplicas(t *testing.T) {
	cfg := Defaults()
	cfg.Hidden, cfg.Batch, cfg.LabeledBatch, cfg.MCTLR, cfg.Dropout = []int{8, 8, 8}, 16, 8, 0.01, 0.1
	ds := RandomViews([]int{5, 6}, 4, 64, 3)
	all := allRows(len(ds.TrainLabels))
	run := func() []string {
		out := make([]string, 4)
		err := onLocalRanks(cfg, ds, ranks.Layout{Views: 2, Replicas: 2}, func(int) (nn.Backend, error) { return nn.NewCPU(), nil },
			func(r *rank) error {
				r.opt = nn.NewAdam(r.probe, cfg.LR)
				for s := 0; s < 2; s++ {
					r.supervisedUpdate(all[s*8:s*8+8], func(i int) int32 { return ds.TrainLabels[i] })
				}
				r.opt = nn.NewAdam(r.probe, cfg.MCTLR)
				for s := 0; s < 2; s++ {
					r.mctUpdate(s, all[s*16+3:s*16+19], all[40-8*s:48-8*s], ds.TrainLabels)
				}
				z := r.logits([]int{63, 0, 17, 17, 5}, false)
				out[r.world.Rank()] = r.probe.Checksum() + fmt.Sprint(z) // %v round-trips float32 exactly
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	res := run()
	t.Setenv("MCT_RESIDENT", "0")
	if host := run(); !slices.Equal(res, host) {
		t.Errorf("resident features: weights and logits %v, host gather %v", res, host)
	}
}

// memDevice is the CPU backend posing as a device: nn.Backend only (its Adopt hidden),
// reporting free memory as cudaops.Backend.MemInfo does, and counting uploads.
type memDevice struct {
	nn.Backend
	free             int64
	err              error
	uploads, gathers int
}

func (m *memDevice) MemInfo() (free, total int64, err error) { return m.free, 80 << 30, m.err }

func (m *memDevice) Upload(dst nn.Buf, src []float32) { m.uploads++; m.Backend.Upload(dst, src) }

func (m *memDevice) GatherRows(dst, src nn.Buf, cols int, idx nn.Buf, n int) {
	m.gathers++
	m.Backend.GatherRows(dst, src, cols, idx, n)
}

// TestResidentOnDevice: on a device, features are kept resident when they take at most
// half the free memory, in one upload (cudaops stages a large one in pieces), and equal
// to the host's; not when they take more, when the device cannot say, or under
// MCT_RESIDENT=0. On the CPU they are the host slice itself.
func TestResidentOnDevice(t *testing.T) {
	feat := make([]float32, 5123)
	for i := range feat {
		feat[i] = float32(i%1000) - 0.5
	}
	size := int64(4 * len(feat))
	for _, tc := range []struct {
		name    string
		free    int64
		err     error
		want    bool
		uploads int
	}{
		{"fits", 2 * size, nil, true, 1},
		{"too big", 2*size - 4, nil, false, 0},
		{"no answer", 1 << 40, errors.New("cuMemGetInfo failed"), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := &memDevice{Backend: nn.NewCPU(), free: tc.free, err: tc.err}
			buf := resident(dev, feat)
			if (buf != nil) != tc.want || dev.uploads != tc.uploads {
				t.Fatalf("resident: %v in %d uploads, want %v in %d", buf != nil, dev.uploads, tc.want, tc.uploads)
			}
			if buf == nil {
				return
			}
			got := make([]float32, len(feat))
			dev.Download(got, buf)
			if !slices.Equal(got, feat) {
				t.Error("the resident copy differs from the features")
			}
			if &buf.(nn.HostBuf)[0] == &feat[0] {
				t.Error("a device got the host slice, not a copy")
			}
		})
	}
	if buf := resident(nn.NewCPU(), feat); buf == nil || &buf.(nn.HostBuf)[0] != &feat[0] {
		t.Error("the CPU backend does not adopt the features as they are")
	}
	t.Setenv("MCT_RESIDENT", "0")
	if resident(nn.NewCPU(), feat) != nil || resident(&memDevice{Backend: nn.NewCPU(), free: 1 << 40}, feat) != nil {
		t.Error("MCT_RESIDENT=0 kept features resident")
	}
}

// TestResidentDeviceUpdates: MCT updates on a device-like backend (resident features in
// device memory it allocated, not adopted) give the CPU's weights bit for bit.
func TestResidentDeviceUpdates(t *testing.T) {
	cfg := Defaults()
	cfg.Hidden, cfg.Batch, cfg.LabeledBatch = []int{8, 8, 8}, 16, 8
	ds := RandomViews([]int{5, 6, 7}, 4, 64, 3)
	run := func(free int64) ([]string, []*memDevice) {
		var mu sync.Mutex
		var devs []*memDevice
		sums, err := Updates(cfg, ds, 3, func(int) (nn.Backend, error) {
			mu.Lock()
			defer mu.Unlock()
			devs = append(devs, &memDevice{Backend: nn.NewCPU(), free: free})
			return devs[len(devs)-1], nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return sums, devs
	}
	want, host := run(0) // no free memory: the host gather
	got, res := run(1 << 30)
	if !slices.Equal(got, want) {
		t.Errorf("resident on a device: weights %v, host gather %v", got, want)
	}
	for v := range res {
		// Two gathers per update (unlabeled rows in segment A, labeled rows in B).
		if host[v].gathers != 0 || res[v].gathers != 6 {
			t.Errorf("view %d gathered %d times on the device with no memory, %d with, want 0 and 6", v, host[v].gathers, res[v].gathers)
		}
	}
}
