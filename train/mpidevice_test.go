//go:build cgo && !nompi

package train

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mct/internal/testenv"
)

// TestMPIDeviceExchange: under mpirun, with a backend whose buffers have addresses (as a
// GPU's do) and MCT_CUDA_AWARE=1, the teacher logits are all-gathered in place by address
// (exchangeMPIDevice); with MCT_CUDA_AWARE=0, or MCT_DEVICE_EXCHANGE=0 on one rank only,
// through the host. All give the run of one process (the views' backends passing the
// logits to each other) bit for bit.
func TestMPIDeviceExchange(t *testing.T) {
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		testenv.Missing(t, "mpirun not found (apt-get install openmpi-bin libopenmpi-dev)")
	}
	RegisterDevice(addrCPUName, openAddrCPU)
	dir, all := synthDir(t)
	cfg := tinyRun(t, "mct", dir, all[:2], 9)
	cfg.WarmupEpochs, cfg.Patience, cfg.Epochs, cfg.Device = 3, 2, 2, addrCPUName
	local, err := Run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if local.LogitsExchange != exchangeBackends || local.Updates == 0 {
		t.Fatalf("one process: logits via %q, %d updates; want %q and some", local.LogitsExchange, local.Updates, exchangeBackends)
	}
	// The last case: MCT_DEVICE_EXCHANGE=0 on rank 1 only (as a variable that mpirun
	// does not export to another node) takes every rank to the host path.
	for _, tc := range []struct {
		aware    string
		hostRank int
		want     string
	}{{"1", -1, exchangeMPIDevice}, {"0", -1, exchangeHost}, {"1", 1, exchangeHost}} {
		c := cfg
		c.Out, c.Quiet = t.TempDir(), false // rank 0's notes are checked below
		js, err := jobJSON(c, tc.hostRank)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, mpirun, "--oversubscribe", "-np", "2", os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"="+string(js), "MCT_CUDA_AWARE="+tc.aware,
			"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mpirun -np 2 with MCT_CUDA_AWARE=%s, rank %d with MCT_DEVICE_EXCHANGE=0: %v\n%s", tc.aware, tc.hostRank, err, out)
		}
		// Rank 0 warns once when MCT_CUDA_AWARE=1 sends device buffers to a library that
		// denies CUDA support (Debian's Open MPI), and never otherwise.
		libAware := strings.Contains(string(out), "worker: library cuda-aware=true")
		wantNote := 0
		if tc.want == exchangeMPIDevice && !libAware {
			wantNote = 1
		}
		if n := strings.Count(string(out), "note: MCT_CUDA_AWARE=1 passes GPU buffers"); n != wantNote {
			t.Errorf("MCT_CUDA_AWARE=%s (library CUDA-aware: %v), logits via %s: the override's note %d times, want %d\n%s",
				tc.aware, libAware, tc.want, n, wantNote, out)
		}
		s := readSummary(t, c.Out)
		if s.LogitsExchange != tc.want || s.Transport != "mpi" || s.CUDAGraphs != nil {
			t.Errorf("MCT_CUDA_AWARE=%s, rank %d with MCT_DEVICE_EXCHANGE=0: logits via %q over %q, cuda_graphs %s; want %q over mpi, absent",
				tc.aware, tc.hostRank, s.LogitsExchange, s.Transport, graphsField(s.CUDAGraphs), tc.want)
		}
		sameParams(t, "one process", local, fmt.Sprintf("mpirun -np 2, logits via %s", s.LogitsExchange), &s)
	}
}
