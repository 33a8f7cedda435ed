package ranks

import "fmt"

// Comm is a communicator: an ordered group of ranks that take part in
// collectives together. Every collective must be called by every rank of the
// group, in the same order, with buffers of the same length (MPI's rule); a
// length or order mismatch is a programmer error and panics on the local
// transport (on MPI it is fatal to the job).
//
// A Comm may be handed from goroutine to goroutine, but its collectives must
// not run concurrently with each other: like MPI's, they are matched across
// ranks by their order.
//
// Collectives return no error: on MPI, errors are fatal by design
// (MPI_ERRORS_ARE_FATAL), so a dead peer ends the whole job instead of leaving
// the survivors blocked; on the local transport a failed rank cancels the
// others (see RunLocal).
//
// Floating-point sums are deterministic and identical on both transports:
// element i of the result is ((x₀[i] + x₁[i]) + x₂[i]) + … in rank order,
// rounded to the element type after every addition, and every rank receives
// the same bits.
type Comm interface {
	// Rank is this process's (or goroutine's) index in the group, 0 ≤ Rank < Size.
	Rank() int
	// Size is the number of ranks in the group.
	Size() int

	// AllgatherF32 sets recv to the concatenation of every rank's send, in
	// rank order; len(recv) must be Size()*len(send). send may be this rank's
	// own block of recv (recv[Rank()*n:(Rank()+1)*n]), like MPI_IN_PLACE.
	AllgatherF32(send, recv []float32)
	// AllgatherF64 is AllgatherF32 for float64.
	AllgatherF64(send, recv []float64)
	// AllgatherI64 is AllgatherF32 for int64.
	AllgatherI64(send, recv []int64)

	// AllreduceF32 replaces buf, in place, by the element-wise sum over all
	// ranks, summed in rank order (see the type's comment).
	AllreduceF32(buf []float32)
	// AllreduceF64 is AllreduceF32 for float64.
	AllreduceF64(buf []float64)
	// AllreduceI64 replaces buf, in place, by the element-wise Sum, Max or Min
	// over all ranks.
	AllreduceI64(buf []int64, op Op)

	// Bcast copies root's buf into buf on every other rank.
	Bcast(buf []byte, root int)
	// Barrier returns once every rank of the group has called it.
	Barrier()

	// Split partitions the group like MPI_Comm_split: ranks that pass the same
	// color form a new communicator, ordered by key and then by rank in this
	// one. A negative color (Undefined) joins no group and gets a nil Comm.
	// It is a collective: every rank of this group must call it.
	Split(color, key int) (Comm, error)

	// Abort ends the whole job with the exit code, from any rank and without
	// the others' cooperation (MPI_Abort; on the local transport, RunLocal
	// cancels every rank and returns an *AbortError). It does not return.
	Abort(code int)

	// Close releases the communicator (MPI_Comm_free; for the world
	// communicator, MPI_Finalize). It is a collective. Using a closed Comm
	// panics.
	Close() error
}

// InProcess is implemented by the communicators of the local transport, whose ranks
// are goroutines of one process: they can hand each other Go values, device buffers
// included, instead of copies of bytes.
type InProcess interface {
	Comm
	// Share is a collective that returns every rank's v in rank order: the values
	// themselves, not copies.
	Share(v any) []any
}

// AddrComm is implemented by the MPI transport's communicators: collectives on memory
// outside Go's heap, given by address. With a CUDA-aware MPI library (CUDAAware) that
// memory may be a GPU's, which a CUDA backend then passes as it is instead of staging
// it through the host.
type AddrComm interface {
	Comm
	// AllgatherAddrF32 is AllgatherF32 on n float32 per rank at the addresses send
	// and recv, which must not be Go memory. send = recv + 4·n·Rank() is in place.
	// around, unless nil, runs the MPI call on the thread that makes it, which is
	// not the caller's under MPI_THREAD_FUNNELED: a CUDA backend's InContext, so
	// that the library finds the device's context current there.
	AllgatherAddrF32(send, recv uintptr, n int, around func(func()))
}

// Undefined, as a color passed to Split, means "in no new group" (MPI_UNDEFINED).
const Undefined = -1

// Op is a reduction for AllreduceI64.
type Op int

const (
	// Sum adds the ranks' values (int64 addition wraps, so order does not matter).
	Sum Op = iota
	// Max keeps the largest value.
	Max
	// Min keeps the smallest value.
	Min
)

func (o Op) String() string {
	switch o {
	case Sum:
		return "Sum"
	case Max:
		return "Max"
	case Min:
		return "Min"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// AbortError is what RunLocal returns when a rank called Abort.
type AbortError struct {
	Rank int // world rank that called Abort
	Code int // the exit code it asked for
}

func (e *AbortError) Error() string {
	return fmt.Sprintf("rank %d aborted the job with code %d", e.Rank, e.Code)
}

// number is the element types that reductions operate on.
type number interface {
	~float32 | ~float64 | ~int64
}

// chunk returns the half-open range [lo, hi) of the n elements that rank r of
// size ranks owns in a reduce-scatter. Both transports split work this way;
// the partition decides who adds, never the order of the additions.
func chunk(n, size, r int) (lo, hi int) {
	return r * n / size, (r + 1) * n / size
}

// reduceInto sets dst[i] = srcs[0][i] op srcs[1][i] op … op srcs[k][i],
// combining strictly left to right so that float sums round the same way on
// every transport. dst may be one of srcs: element i of every source is read
// before dst[i] is written.
func reduceInto[T number](dst []T, srcs [][]T, op Op) {
	for _, s := range srcs {
		if len(s) != len(dst) {
			panic(fmt.Sprintf("ranks: reduce of %d elements got a source of %d", len(dst), len(s)))
		}
	}
	first, rest := srcs[0], srcs[1:]
	switch op {
	case Sum:
		// Source by source through a small block, loops the compiler keeps
		// free of bounds checks: 1.6x the speed of an element-by-element
		// loop over the sources (BenchmarkReduceInto on a quiet x86 node).
		// Each block of every source is read before the same block of dst
		// is written, so dst may still alias a source.
		var acc [512]T
		for lo := 0; lo < len(dst); lo += len(acc) {
			a := acc[:min(len(acc), len(dst)-lo)]
			copy(a, first[lo:])
			for _, s := range rest {
				s := s[lo : lo+len(a)]
				for i := range a {
					a[i] += s[i]
				}
			}
			copy(dst[lo:], a)
		}
	case Max:
		for i := range dst {
			acc := first[i]
			for _, s := range rest {
				acc = max(acc, s[i])
			}
			dst[i] = acc
		}
	case Min:
		for i := range dst {
			acc := first[i]
			for _, s := range rest {
				acc = min(acc, s[i])
			}
			dst[i] = acc
		}
	default:
		panic(fmt.Sprintf("ranks: unknown reduction %v", op))
	}
}

// checkGather panics unless recv can hold size blocks of len(send).
func checkGather(name string, size, send, recv int) {
	if recv != size*send {
		panic(fmt.Sprintf("ranks: %s: len(recv) = %d, want Size()*len(send) = %d*%d = %d",
			name, recv, size, send, size*send))
	}
}
