//go:build cgo && !nompi

package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
		c.Out = t.TempDir()
		js, err := jobJSON(c, tc.hostRank)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, mpirun, "--oversubscribe", "-np", "2", os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"="+string(js), "MCT_CUDA_AWARE="+tc.aware,
			"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mpirun -np 2 with MCT_CUDA_AWARE=%s, rank %d with MCT_DEVICE_EXCHANGE=0: %v\n%s", tc.aware, tc.hostRank, err, out)
		}
		var s Summary
		b, err := os.ReadFile(filepath.Join(c.Out, "summary.json"))
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil {
			t.Fatal(err)
		}
		if s.LogitsExchange != tc.want || s.Transport != "mpi" {
			t.Errorf("MCT_CUDA_AWARE=%s, rank %d with MCT_DEVICE_EXCHANGE=0: logits via %q over %q, want %q over mpi",
				tc.aware, tc.hostRank, s.LogitsExchange, s.Transport, tc.want)
		}
		sameParams(t, "one process", local, fmt.Sprintf("mpirun -np 2, logits via %s", s.LogitsExchange), &s)
	}
}
