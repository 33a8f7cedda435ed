package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"unsafe"

	"mct/nn"
	"mct/ranks"
)

// workerEnv holds the job (JSON: workerJob) that a test binary started by mpirun runs as one rank
// instead of running the tests (mpidevice_test.go).
const workerEnv = "MCT_TRAIN_WORKER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(workerEnv); cfg != "" {
		os.Exit(worker(cfg))
	}
	os.Exit(m.Run())
}

// workerJob is what a worker runs: a Config, with the fields config.json leaves out, and
// HostLogitsRank, a world rank (-1: none) that runs with MCT_DEVICE_EXCHANGE=0 alone.
type workerJob struct {
	Config         Config
	Out, Device    string
	Quiet, Resume  bool
	HostLogitsRank int
}

func jobJSON(cfg Config, hostLogitsRank int) ([]byte, error) {
	return json.Marshal(workerJob{Config: cfg, Out: cfg.Out, Device: cfg.Device, Quiet: cfg.Quiet, Resume: cfg.Resume, HostLogitsRank: hostLogitsRank})
}

// worker runs one rank of the workerJob in jobJSON, with the test devices registered.
func worker(jobJSON string) int {
	var job workerJob
	if err := json.Unmarshal([]byte(jobJSON), &job); err != nil {
		fmt.Fprintln(os.Stderr, "worker job:", err)
		return 1
	}
	cfg := job.Config
	cfg.Out, cfg.Device, cfg.Quiet, cfg.Resume = job.Out, job.Device, job.Quiet, job.Resume
	if os.Getenv("OMPI_COMM_WORLD_RANK") == strconv.Itoa(job.HostLogitsRank) {
		os.Setenv("MCT_DEVICE_EXCHANGE", "0")
	}
	RegisterDevice(addrCPUName, openAddrCPU)
	if _, err := Run(context.Background(), cfg, os.Stderr); err != nil {
		if !errors.As(err, new(Reported)) { // printed already, once for the job
			fmt.Fprintln(os.Stderr, err)
		}
		return 1
	}
	return 0
}

// addrCPU is the CPU backend with its buffers outside Go's heap (anonymous mappings) and
// their addresses given out (nn.Addresser), as a GPU backend's device memory is: under
// MPI with MCT_CUDA_AWARE=1 the teacher logits are then all-gathered by address
// (exchangeMPIDevice), the path a CUDA-aware MPI takes with cudaops.
type addrCPU struct{ *nn.CPU }

const addrCPUName = "cpu-addr"

// openAddrCPU opens an addrCPU; in a worker it also prints what the MPI library says of
// its CUDA support (MPI is running by then), for the test to compare with the notes.
func openAddrCPU(int, int, string) (nn.Backend, error) {
	if os.Getenv(workerEnv) != "" {
		aware, _ := ranks.CUDAAware()
		fmt.Fprintf(os.Stderr, "worker: library cuda-aware=%v\n", aware)
	}
	return addrCPU{nn.NewCPU()}, nil
}

// Alloc maps n zeroed floats; the mapping lives until the process ends (tests only).
func (addrCPU) Alloc(n int) nn.Buf {
	if n == 0 {
		return nn.HostBuf(nil)
	}
	m, err := syscall.Mmap(-1, 0, 4*n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		panic(err)
	}
	return nn.HostBuf(unsafe.Slice((*float32)(unsafe.Pointer(&m[0])), n))
}

func (addrCPU) Free(nn.Buf) {}

func (addrCPU) Addr(b nn.Buf) uintptr { return uintptr(unsafe.Pointer(&b.(nn.HostBuf)[0])) }

func (addrCPU) InContext(f func()) { f() }
