//go:build cgo && !nompi

package ranks

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <mpi.h>

// Communicators live in this table and Go holds indices into it, because
// MPI_Comm is a pointer in Open MPI and an int in MPICH. Only the MPI thread
// touches it. Index 0 is MPI_COMM_WORLD.
static MPI_Comm *mct_comms = NULL;
static int mct_ncomms = 0;

static int mct_comm_put(MPI_Comm c) {
	for (int i = 0; i < mct_ncomms; i++) {
		if (mct_comms[i] == MPI_COMM_NULL) {
			mct_comms[i] = c;
			return i;
		}
	}
	MPI_Comm *grown = realloc(mct_comms, (mct_ncomms + 1) * sizeof(MPI_Comm));
	if (grown == NULL) {
		return -1;
	}
	mct_comms = grown;
	mct_comms[mct_ncomms] = c;
	return mct_ncomms++;
}

enum { MCT_F32, MCT_F64, MCT_I64, MCT_BYTE };

static MPI_Datatype mct_type(int t) {
	switch (t) {
	case MCT_F32: return MPI_FLOAT;
	case MCT_F64: return MPI_DOUBLE;
	case MCT_I64: return MPI_INT64_T;
	default: return MPI_BYTE;
	}
}

enum { MCT_SUM, MCT_MAX, MCT_MIN };

static MPI_Op mct_op(int op) {
	switch (op) {
	case MCT_MAX: return MPI_MAX;
	case MCT_MIN: return MPI_MIN;
	default: return MPI_SUM;
	}
}

// mct_init starts MPI and learns what the node looks like. Errors on the
// world communicator are fatal: a dead peer ends the job instead of leaving
// the others waiting in a collective forever.
static int mct_init(int required, int *provided, int *rank, int *size, int *local_rank, int *local_size) {
	int rc = MPI_Init_thread(NULL, NULL, required, provided);
	if (rc != MPI_SUCCESS) {
		return rc;
	}
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
	if (mct_comm_put(MPI_COMM_WORLD) != 0) {
		return MPI_ERR_NO_MEM;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, rank);
	MPI_Comm_size(MPI_COMM_WORLD, size);
	MPI_Comm node;
	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
	MPI_Comm_rank(node, local_rank);
	MPI_Comm_size(node, local_size);
	return MPI_Comm_free(&node);
}

static int mct_rank_size(int h, int *rank, int *size) {
	MPI_Comm_rank(mct_comms[h], rank);
	return MPI_Comm_size(mct_comms[h], size);
}

static int mct_allgather(int h, int t, void *send, int n, void *recv) {
	return MPI_Allgather(send == NULL ? MPI_IN_PLACE : send, n, mct_type(t), recv, n, mct_type(t), mct_comms[h]);
}

// mct_allgather_addr is mct_allgather on addresses that Go holds as integers: memory
// outside Go's heap (a GPU's, for a CUDA-aware MPI).
static int mct_allgather_addr(int h, uintptr_t send, int n, uintptr_t recv) {
	return mct_allgather(h, MCT_F32, (void *)send, n, (void *)recv);
}

static int mct_alltoallv(int h, int t, void *send, int *scounts, int *sdispls, void *recv, int *rcounts, int *rdispls) {
	return MPI_Alltoallv(send, scounts, sdispls, mct_type(t), recv, rcounts, rdispls, mct_type(t), mct_comms[h]);
}

static int mct_allgatherv(int h, int t, void *buf, int *counts, int *displs) {
	return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, mct_type(t), mct_comms[h]);
}

static int mct_allreduce(int h, int t, void *buf, int n, int op) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, mct_type(t), mct_op(op), mct_comms[h]);
}

static int mct_bcast(int h, void *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, mct_comms[h]);
}

static int mct_barrier(int h) {
	return MPI_Barrier(mct_comms[h]);
}

// mct_split returns the new communicator's index, -1 for none (color
// MPI_UNDEFINED), -2 if the table cannot grow.
static int mct_split(int h, int color, int key) {
	MPI_Comm out;
	MPI_Comm_split(mct_comms[h], color < 0 ? MPI_UNDEFINED : color, key, &out);
	if (out == MPI_COMM_NULL) {
		return -1;
	}
	MPI_Comm_set_errhandler(out, MPI_ERRORS_ARE_FATAL);
	int i = mct_comm_put(out);
	return i < 0 ? -2 : i;
}

static int mct_free(int h) {
	return MPI_Comm_free(&mct_comms[h]); // sets the slot to MPI_COMM_NULL
}

static int mct_finalize(void) {
	return MPI_Finalize();
}

// Abort uses MPI_COMM_WORLD, never the table, because it runs on whichever
// thread asks and the MPI thread may be blocked in a collective.
static void mct_abort(int code) {
	MPI_Abort(MPI_COMM_WORLD, code);
}

static int mct_library_version(char *buf, int *len) {
	return MPI_Get_library_version(buf, len);
}

// mct_cuda_query asks the library at run time, through dlsym, so that one
// binary answers for whichever MPI it is started with. MPICH 4 has
// MPIX_GPU_query_support, where CUDA is type 0 (MPIX_GPU_SUPPORT_CUDA), and
// also exports Open MPI's MPIX_Query_cuda_support (mpi-ext.h), so it is asked
// first. *which: 1 MPIX_GPU_query_support, 2 MPIX_Query_cuda_support, 0 neither.
static int mct_cuda_query(int *which) {
	int (*gpu)(int, int *) = (int (*)(int, int *))dlsym(RTLD_DEFAULT, "MPIX_GPU_query_support");
	if (gpu != NULL) {
		int ok = 0;
		if (gpu(0, &ok) == MPI_SUCCESS) {
			*which = 1;
			return ok;
		}
	}
	int (*cuda)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "MPIX_Query_cuda_support");
	if (cuda != NULL) {
		*which = 2;
		return cuda();
	}
	*which = 0;
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Threads. A goroutine locked to its OS thread (runtime.LockOSThread), the
// MPI thread, calls MPI_Init_thread and, at Close, MPI_Finalize: MPI wants both
// on the same thread. In between, any goroutine may use a Comm:
//   - with MPI_THREAD_SERIALIZED (every current Open MPI, MPICH, Intel MPI and
//     Cray MPICH provides it), the calling goroutine makes the MPI call itself
//     under a mutex, which saves two thread switches per call;
//   - with MCT_MPI_FUNNELED=1 in the environment, or a library that provides
//     only MPI_THREAD_FUNNELED, every call is handed to the MPI thread and
//     waits for it.
// Either way calls from several goroutines are serialised. The exception is
// Abort, which calls MPI_Abort at once so that it works while another call is
// blocked in a collective.

// mpi is the process's MPI state; mu guards its fields.
var mpi struct {
	mu        sync.Mutex
	calls     chan func() // to the MPI thread; nil before World and after Finalize
	direct    bool        // MPI_THREAD_SERIALIZED: callers make MPI calls themselves
	callMu    sync.Mutex  // serialises direct calls
	finalized bool
	node      struct{ rank, size int }
}

// World initialises MPI and returns the world communicator. It fails unless
// the process was started by an MPI launcher (see Launched); call it once and
// Close the result at the end (MPI_Finalize).
func World() (Comm, error) {
	if !Launched() {
		return nil, errNotLaunched
	}
	if os.Getenv("PMIX_RANK") == "" && os.Getenv("PMI_SIZE") == "" && os.Getenv("PMI_RANK") == "" &&
		os.Getenv("OMPI_COMM_WORLD_SIZE") == "" {
		return nil, errNoPMI()
	}
	mpi.mu.Lock()
	defer mpi.mu.Unlock()
	if mpi.calls != nil {
		return nil, errors.New("ranks.World: MPI is already initialised in this process; use the Comm the first call returned")
	}
	if mpi.finalized {
		return nil, errors.New("ranks.World: MPI was finalised by closing the world Comm; it cannot start again in the same process")
	}
	calls := make(chan func())
	go serveMPI(calls)
	required := C.int(C.MPI_THREAD_SERIALIZED)
	if os.Getenv("MCT_MPI_FUNNELED") == "1" {
		required = C.MPI_THREAD_FUNNELED
	}
	var rc, provided, rank, size, lrank, lsize C.int
	do(calls, func() { rc = C.mct_init(required, &provided, &rank, &size, &lrank, &lsize) })
	if rc != C.MPI_SUCCESS {
		close(calls)
		return nil, fmt.Errorf("MPI_Init_thread failed with error %d", int(rc))
	}
	// Below MPI_THREAD_FUNNELED (a library that knows no threads) the calls
	// still all come from the thread that initialised MPI, which works in
	// practice.
	mpi.direct = required == C.MPI_THREAD_SERIALIZED && provided >= C.MPI_THREAD_SERIALIZED
	mpi.calls = calls
	mpi.node.rank, mpi.node.size = int(lrank), int(lsize)
	return &mpiComm{h: 0, rank: int(rank), size: int(size), world: true}, nil
}

// serveMPI runs on its own locked thread for the life of MPI; when calls is
// closed the goroutine ends still locked, and Go retires the thread with it.
func serveMPI(calls chan func()) {
	runtime.LockOSThread()
	for f := range calls {
		f()
	}
}

// do runs f on the MPI thread and waits for it.
func do(calls chan func(), f func()) {
	done := make(chan struct{})
	calls <- func() {
		f()
		close(done)
	}
	<-done
}

// call makes the MPI calls in f, serialised with every other, on this thread
// or on the MPI thread (see Threads above); it panics if MPI is not running.
func call(f func()) {
	mpi.mu.Lock()
	calls, direct := mpi.calls, mpi.direct
	mpi.mu.Unlock()
	if calls == nil {
		panic("ranks: MPI call after the world Comm was closed (MPI_Finalize)")
	}
	if !direct {
		do(calls, f)
		return
	}
	mpi.callMu.Lock()
	defer mpi.callMu.Unlock()
	f()
}

func mpiNode() (rank, size int, ok bool) {
	mpi.mu.Lock()
	defer mpi.mu.Unlock()
	return mpi.node.rank, mpi.node.size, mpi.calls != nil
}

// CUDAAware reports whether the MPI library can move GPU (CUDA) memory
// directly, and how it knows. It asks the library at run time, so call it
// after World: before, it says MPI is not initialised.
func CUDAAware() (bool, string) {
	mpi.mu.Lock()
	running := mpi.calls != nil
	mpi.mu.Unlock()
	if !running {
		return false, "MPI is not initialised: ask after ranks.World"
	}
	var ok, which C.int
	call(func() { ok = C.mct_cuda_query(&which) })
	switch which {
	case 1:
		return ok == 1, fmt.Sprintf("MPIX_GPU_query_support(MPIX_GPU_SUPPORT_CUDA) = %d", int(ok))
	case 2:
		return ok == 1, fmt.Sprintf("MPIX_Query_cuda_support() = %d", int(ok))
	}
	return false, "the MPI library has no CUDA-support query (neither MPIX_Query_cuda_support nor MPIX_GPU_query_support)"
}

// LibraryVersion is the MPI library's own description of itself
// (MPI_Get_library_version), which MPI allows before MPI_Init. Open MPI's is
// one line; MPICH's spans several (its configure and compilers).
func LibraryVersion() string {
	buf := make([]byte, C.MPI_MAX_LIBRARY_VERSION_STRING)
	var n C.int
	C.mct_library_version((*C.char)(unsafe.Pointer(&buf[0])), &n)
	return strings.TrimSpace(strings.TrimRight(string(buf[:n]), "\x00"))
}

var _ AddrComm = (*mpiComm)(nil)

// mpiComm is a communicator of the MPI transport: an index into the C table.
type mpiComm struct {
	h          C.int
	rank, size int
	world      bool
	closed     bool
	scratchF32 []float32 // Allreduce receive buffers, kept between calls
	scratchF64 []float64
}

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

func (c *mpiComm) check() {
	if c.closed {
		panic("ranks: use of a closed Comm")
	}
}

// maxCount is the largest element count one MPI call takes (a C int).
const maxCount = math.MaxInt32

// typeCode is the C table's type for a Go element type.
func typeCode[T float32 | float64 | int64 | byte]() C.int {
	var z T
	switch any(z).(type) {
	case float32:
		return C.MCT_F32
	case float64:
		return C.MCT_F64
	case int64:
		return C.MCT_I64
	}
	return C.MCT_BYTE
}

func ptr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

func (c *mpiComm) AllgatherF32(send, recv []float32) { mpiAllgather(c, "AllgatherF32", send, recv) }
func (c *mpiComm) AllgatherF64(send, recv []float64) { mpiAllgather(c, "AllgatherF64", send, recv) }
func (c *mpiComm) AllgatherI64(send, recv []int64)   { mpiAllgather(c, "AllgatherI64", send, recv) }

func mpiAllgather[T float32 | float64 | int64](c *mpiComm, name string, send, recv []T) {
	c.check()
	n := len(send)
	checkGather(name, c.size, n, len(recv))
	if n == 0 {
		return // every rank has nothing to send
	}
	if n > maxCount {
		panic(fmt.Sprintf("ranks: %s of %d elements per rank: MPI counts stop at %d", name, n, maxCount))
	}
	sp := ptr(send)
	if &send[0] == &recv[c.rank*n] {
		sp = nil // MPI_IN_PLACE: MPI forbids overlapping send and receive buffers
	}
	call(func() { C.mct_allgather(c.h, typeCode[T](), sp, C.int(n), ptr(recv)) })
}

// AllgatherAddrF32 implements AddrComm.
func (c *mpiComm) AllgatherAddrF32(send, recv uintptr, n int, around func(func())) {
	c.check()
	if n < 0 || n > maxCount || recv == 0 {
		panic(fmt.Sprintf("ranks: AllgatherAddrF32 of %d elements per rank into address %#x", n, recv))
	}
	if n == 0 {
		return
	}
	if send == recv+uintptr(4*n*c.rank) {
		send = 0 // MPI_IN_PLACE
	}
	gather := func() { C.mct_allgather_addr(c.h, C.uintptr_t(send), C.int(n), C.uintptr_t(recv)) }
	if around == nil {
		call(gather)
		return
	}
	call(func() { around(gather) })
}

func (c *mpiComm) AllreduceF32(buf []float32) { mpiSum(c, buf, &c.scratchF32) }
func (c *mpiComm) AllreduceF64(buf []float64) { mpiSum(c, buf, &c.scratchF64) }

// reducePiece bounds the elements one reduce-scatter round handles, so that
// every count and displacement fits MPI's int.
const reducePiece = 1 << 28

// mpiSum is a deterministic allreduce built from MPI_Alltoallv (a
// reduce-scatter: rank r receives chunk r of every rank's buffer), a sum in
// rank order with the same code as the local transport, and MPI_Allgatherv of
// the summed chunks. It moves the same bytes as a ring allreduce, 2(P−1)/P of
// the buffer in and out of each rank, and unlike MPI_Allreduce its summation
// order does not depend on the library's algorithm choice, so MPI and local
// runs agree bit for bit. The price, measured with bench/comm on one 16-core
// node (Open MPI 4.1.6, 3M floats, best of 3): 4.2 ms against MPI_Allreduce's
// 2.8 ms at 2 ranks, 6.1 against 4.3 at 4, 7.9 against 5.6 at 8.
func mpiSum[T float32 | float64](c *mpiComm, buf []T, scratch *[]T) {
	c.check()
	if c.size == 1 || len(buf) == 0 {
		return
	}
	for len(buf) > reducePiece {
		mpiSum(c, buf[:reducePiece], scratch)
		buf = buf[reducePiece:]
	}
	n, p := len(buf), c.size
	lo, hi := chunk(n, p, c.rank)
	mine := hi - lo
	if cap(*scratch) < mine*p {
		*scratch = make([]T, mine*p)
	}
	recv := (*scratch)[:mine*p]
	// Go memory without pointers, which cgo lets C read during the call.
	counts := make([]C.int, 4*p)
	scounts, sdispls, rcounts, rdispls := counts[:p], counts[p:2*p], counts[2*p:3*p], counts[3*p:]
	for r := range p {
		rlo, rhi := chunk(n, p, r)
		scounts[r], sdispls[r] = C.int(rhi-rlo), C.int(rlo)
		rcounts[r], rdispls[r] = C.int(mine), C.int(r*mine)
	}
	t := typeCode[T]()
	bp, rp := ptr(buf), ptr(recv)
	if rp == nil {
		rp = unsafe.Pointer(&counts[0]) // n < p: this rank owns no chunk, but MPI wants an address
	}
	call(func() {
		C.mct_alltoallv(c.h, t, bp, &scounts[0], &sdispls[0], rp, &rcounts[0], &rdispls[0])
	})
	srcs := make([][]T, p)
	for r := range p {
		srcs[r] = recv[r*mine : (r+1)*mine]
	}
	reduceInto(buf[lo:hi], srcs, Sum)
	call(func() { C.mct_allgatherv(c.h, t, bp, &scounts[0], &sdispls[0]) })
}

func (c *mpiComm) AllreduceI64(buf []int64, op Op) {
	c.check()
	var cop C.int
	switch op {
	case Sum:
		cop = C.MCT_SUM
	case Max:
		cop = C.MCT_MAX
	case Min:
		cop = C.MCT_MIN
	default:
		panic(fmt.Sprintf("ranks: unknown reduction %v", op))
	}
	// Integer reductions are exact in any order, so MPI's own algorithm is used.
	for len(buf) > 0 {
		piece := buf[:min(len(buf), reducePiece)]
		call(func() { C.mct_allreduce(c.h, C.MCT_I64, ptr(piece), C.int(len(piece)), cop) })
		buf = buf[len(piece):]
	}
}

func (c *mpiComm) Bcast(buf []byte, root int) {
	c.check()
	if root < 0 || root >= c.size {
		panic(fmt.Sprintf("ranks: Bcast root %d outside a group of %d", root, c.size))
	}
	for len(buf) > 0 {
		piece := buf[:min(len(buf), maxCount)]
		call(func() { C.mct_bcast(c.h, ptr(piece), C.int(len(piece)), C.int(root)) })
		buf = buf[len(piece):]
	}
}

func (c *mpiComm) Barrier() {
	c.check()
	call(func() { C.mct_barrier(c.h) })
}

func (c *mpiComm) Split(color, key int) (Comm, error) {
	c.check()
	if color > maxCount || key > maxCount || key < math.MinInt32 {
		return nil, fmt.Errorf("ranks: Split(color=%d, key=%d): MPI takes colors and keys that fit a C int", color, key)
	}
	var h, rank, size C.int
	call(func() {
		h = C.mct_split(c.h, C.int(max(color, Undefined)), C.int(key))
		if h >= 0 {
			C.mct_rank_size(h, &rank, &size)
		}
	})
	switch {
	case h == -1:
		return nil, nil
	case h < 0:
		return nil, errors.New("ranks: Split: out of memory for the communicator table")
	}
	return &mpiComm{h: h, rank: int(rank), size: int(size)}, nil
}

func (c *mpiComm) Abort(code int) {
	C.mct_abort(C.int(code))
	panic("MPI_Abort returned") // it does not
}

// Close frees a sub-communicator (MPI_Comm_free) or, for the world, finalises
// MPI (MPI_Finalize) and stops the MPI thread.
func (c *mpiComm) Close() error {
	c.check()
	c.closed = true
	var rc C.int
	if !c.world {
		call(func() { rc = C.mct_free(c.h) })
		if rc != C.MPI_SUCCESS {
			return fmt.Errorf("MPI_Comm_free failed with error %d", int(rc))
		}
		return nil
	}
	// Finalize on the thread that initialised MPI, after any direct call.
	mpi.callMu.Lock()
	mpi.mu.Lock()
	calls := mpi.calls
	mpi.calls = nil
	mpi.finalized = true
	mpi.mu.Unlock()
	do(calls, func() { rc = C.mct_finalize() })
	close(calls)
	mpi.callMu.Unlock()
	if rc != C.MPI_SUCCESS {
		return fmt.Errorf("MPI_Finalize failed with error %d", int(rc))
	}
	return nil
}
