package ranks

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// workerEnv names the scenario that a test binary started by mpirun plays
// instead of running the tests (see mpi_test.go).
const workerEnv = "MCT_RANKS_WORKER"

func TestMain(m *testing.M) {
	if scenario := os.Getenv(workerEnv); scenario != "" {
		os.Exit(worker(scenario))
	}
	os.Exit(m.Run())
}

// worker plays one rank of an MPI scenario and returns its exit code.
func worker(scenario string) int {
	world, err := World()
	if err != nil {
		// Every rank prints this, as mct's main does.
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r, p := world.Rank(), world.Size()
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "rank %d: %v\n", r, err)
		return 1
	}
	switch scenario {
	case "exercise":
		out, err := exercise(world)
		if err != nil {
			return fail(err)
		}
		if err := os.WriteFile(filepath.Join(os.Getenv("MCT_RANKS_OUT"), fmt.Sprintf("rank-%d.bin", r)), out, 0o644); err != nil {
			return fail(err)
		}
	case "layout":
		if _, err := NewLayout(p, 2); err != nil {
			return fail(err)
		}
	case "kill":
		// The last rank dies without a word in the middle of the sums; the
		// others are inside the next collective when it happens.
		buf := make([]float32, 1<<16)
		for i := 0; ; i++ {
			if r == p-1 && i == 20 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			world.AllreduceF32(buf)
		}
	case "abort":
		world.Barrier()
		if r == 1 {
			world.Abort(7)
		}
		world.Barrier() // never completes: rank 1 is gone
	case "info":
		// One node: the node-local numbering is the world's.
		if LocalRank() != r || LocalSize() != p {
			return fail(fmt.Errorf("LocalRank %d LocalSize %d, want %d and %d", LocalRank(), LocalSize(), r, p))
		}
		aware, why := CUDAAware()
		fmt.Printf("rank %d: %s | cuda-aware=%v (%s)\n", r, LibraryVersion(), aware, why)
		// Go must still turn a nil dereference into a panic it can recover:
		// Open MPI installs its SIGSEGV handler only where none is set, and
		// the Go runtime has set one.
		if err := nilDeref(); err == nil {
			return fail(fmt.Errorf("a nil dereference did not panic"))
		}
	case "addr":
		if err := allgatherAddr(world); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown scenario %q", scenario))
	}
	if err := world.Close(); err != nil {
		return fail(err)
	}
	return 0
}

var nilPointer *int

func nilDeref() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return fmt.Errorf("read %d", *nilPointer)
}

// allgatherAddr checks AllgatherAddrF32 on memory outside Go's heap (an anonymous
// mapping, standing in for a GPU's memory under a CUDA-aware MPI), out of place and in
// place, and on an empty block; and that its around function runs on the thread that
// makes the MPI call (the MPI thread under MCT_MPI_FUNNELED=1), as a CUDA backend's
// InContext must for the library to find the device's context current.
func allgatherAddr(world Comm) error {
	c, ok := world.(AddrComm)
	if !ok {
		return fmt.Errorf("the MPI communicator %T has no AllgatherAddrF32", world)
	}
	const n = 1000
	r, p := c.Rank(), c.Size()
	mem, err := syscall.Mmap(-1, 0, 4*n*(p+1), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer syscall.Munmap(mem)
	f := unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), n*(p+1))
	send, recv := f[:n], f[n:]
	base := uintptr(unsafe.Pointer(&f[0]))
	value := func(rank, i int) float32 { return float32(rank*n+i) + 0.25 }
	check := func(how string) error {
		for k := range p {
			for i := range n {
				if got := recv[k*n+i]; got != value(k, i) {
					return fmt.Errorf("%s: element %d of rank %d's block is %g, want %g", how, i, k, got, value(k, i))
				}
			}
		}
		return nil
	}
	var arounds []int // the thread each call of around ran on
	around := func(gather func()) {
		runtime.LockOSThread() // as InContext does: gather runs on this very thread
		defer runtime.UnlockOSThread()
		arounds = append(arounds, syscall.Gettid())
		gather()
	}
	for i := range n {
		send[i] = value(r, i)
	}
	c.AllgatherAddrF32(base, base+4*n, n, around)
	if err := check("out of place"); err != nil {
		return err
	}
	clear(recv)
	for i := range n {
		recv[r*n+i] = value(r, i)
	}
	c.AllgatherAddrF32(base+4*n+uintptr(4*n*r), base+4*n, n, around)
	if err := check("in place"); err != nil {
		return err
	}
	clear(recv)
	c.AllgatherAddrF32(base, base+4*n, n, nil)
	if err := check("out of place, nothing around"); err != nil {
		return err
	}
	c.AllgatherAddrF32(0, base, 0, around) // nothing to gather: no MPI call
	if len(arounds) != 2 {
		return fmt.Errorf("around ran %d times for 2 all-gathers", len(arounds))
	}
	return onMPIThread(arounds)
}
