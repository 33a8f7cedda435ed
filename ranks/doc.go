// Package ranks moves bytes between the ranks of an mct job: the Comm
// interface, its two transports, and the layout of ranks onto views.
//
// # Communicators
//
// A Comm reads like mpi4py's buffer collectives: Rank, Size, AllgatherF32/F64/I64,
// AllreduceF32/F64 (sums, in place), AllreduceI64 (Sum, Max, Min), Bcast,
// Barrier and Split. Every rank of a communicator calls the same collectives
// in the same order with buffers of the same length. Collectives return no
// error: on MPI a failure is fatal to the whole job by design, and on the local
// transport a failing rank cancels the others; shape mistakes panic.
//
// Float sums are deterministic and transport-independent: element i is
// ((x₀[i] + x₁[i]) + x₂[i]) + … in rank order, and every rank gets the same
// bits. Both transports implement the sum as a reduce-scatter (rank r adds up
// chunk r of every buffer) followed by an allgather, the bandwidth of a ring
// allreduce, so a run with the same seed gives the same weights under mpirun
// and in one process. That equality is what the MPI tests check.
//
// # Transports
//
// RunLocal(n, fn) runs n ranks as goroutines of one process, the default for
// laptops, CI and small data:
//
//	err := ranks.RunLocal(4, func(c ranks.Comm) error {
//		grad := make([]float32, 1000)
//		// … fill grad …
//		c.AllreduceF32(grad)
//		return nil
//	})
//
// A rank's error or panic cancels the others and comes back from RunLocal.
//
// World() joins the MPI job that mpirun or srun started (see Launched). It is
// compiled in when cgo is on (go build; -tags mpich for MPICH instead of Open
// MPI); CGO_ENABLED=0 or -tags nompi builds leave it out and World says so.
// MPI is initialised and finalised on one locked OS thread; in between, with
// MPI_THREAD_SERIALIZED, the calling goroutine makes each MPI call itself under
// a mutex, so any goroutine may use a Comm (one at a time, as on the local
// transport). MCT_MPI_FUNNELED=1 in the
// environment hands every call to the MPI thread instead (MPI_THREAD_FUNNELED),
// for libraries that misbehave with calls from several threads. A typical main:
//
//	if ranks.Launched() {
//		world, err := ranks.World()
//		if err != nil { … print err, exit 1 … }
//		defer world.Close() // MPI_Finalize
//		return train(world)
//	}
//	return ranks.RunLocal(views, train)
//
// Errors are fatal in MPI (MPI_ERRORS_ARE_FATAL): a rank that dies, even by
// kill -9, makes mpirun end the others instead of leaving them waiting.
//
// # Layout
//
// With V views and W = V×R ranks, rank r trains view r mod V as replica
// r div V (NewLayout). Topology splits the world into peer (same replica, all
// views, peer.Rank() == view) for pseudo-label logits and meta-feedback, and
// pool (same view, all replicas, pool.Rank() == replica) for data-parallel
// gradient sums.
//
// LocalRank and LocalSize say where a rank sits on its node, for GPU
// placement; CUDAAware and LibraryVersion describe the MPI library.
//
// Two optional interfaces let train move device buffers without copying them
// through Go memory: InProcess (the local transport: ranks hand each other Go
// values, such as a backend and its buffers) and AddrComm (MPI: an all-gather on
// addresses outside Go's heap, which a CUDA-aware library reads on the GPU).
package ranks
