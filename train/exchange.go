package train

import (
	"fmt"
	"os"

	"mct/nn"
	"mct/ranks"
)

// How an update's teacher logits reach the other views (rank.exchange, in summary.json
// and mct bench's JSON as logits_exchange).
const (
	// exchangeHost: each view downloads its logits, the host all-gathers them (MPI or
	// the local transport) and uploads the others'.
	exchangeHost = "host"
	// exchangeBackends: the views share a process and their backends read each other's
	// buffers (peerLogits): one GPU, or host memory.
	exchangeBackends = "backends"
	// exchangeMPIDevice: a CUDA-aware MPI library all-gathers the device buffers.
	exchangeMPIDevice = "mpi-device"
)

// chooseExchange sets r.exchange and what it needs, the same on every view of the
// replica: it is a collective over r.peer. MCT_DEVICE_EXCHANGE=0 keeps the logits on the
// host path; MCT_CUDA_AWARE=1 or 0 overrides what the MPI library says of itself
// (ranks.CUDAAware).
func (r *rank) chooseExchange() {
	r.exchange = exchangeHost
	in, local := r.peer.(ranks.InProcess)
	ac, addrComm := r.peer.(ranks.AddrComm)
	ad, addr := r.be.(nn.Addresser)
	can := []int64{0, 0}
	// MCT_DEVICE_EXCHANGE=0 votes for the host path instead of skipping the vote: a rank
	// that skipped the all-reduce would hang the others, and under mpirun a rank on
	// another node sees the variable only if it is exported (-x).
	if os.Getenv("MCT_DEVICE_EXCHANGE") != "0" {
		if local {
			can[0] = 1
		}
		if addrComm && addr && cudaAwareMPI() {
			can[1] = 1
		}
	}
	r.peer.AllreduceI64(can, ranks.Min)
	switch {
	case can[0] == 1:
		// Share is a collective: every view calls it, as every view saw can[0] = 1.
		if r.xchg = newPeerLogits(r, in); r.xchg != nil {
			r.exchange = exchangeBackends
		}
	case can[1] == 1:
		r.mpiDev, r.addr, r.exchange = ac, ad, exchangeMPIDevice
		if ok, why := ranks.CUDAAware(); !ok {
			r.exchangeNote = fmt.Sprintf("note: MCT_CUDA_AWARE=1 passes GPU buffers to an MPI library that says it is not CUDA-aware (%s); if MPI crashes, it was right: unset MCT_CUDA_AWARE", why)
		}
	}
}

// cudaAwareMPI says whether the MPI library moves GPU memory: MCT_CUDA_AWARE=1 or 0
// when set, else the library's own answer.
func cudaAwareMPI() bool {
	switch os.Getenv("MCT_CUDA_AWARE") {
	case "1":
		return true
	case "0":
		return false
	}
	ok, _ := ranks.CUDAAware()
	return ok
}

// allgatherOnDevice all-gathers the views' blocks of r.zAll (n rows of r.C logits each)
// in place through a CUDA-aware MPI library, with the device's context current on the
// thread that makes the MPI call (the MPI thread under MCT_MPI_FUNNELED=1). MPI knows
// nothing of the stream, so the host first waits for the teacher forward that wrote
// this view's block.
func (r *rank) allgatherOnDevice(n int) {
	r.be.Sync()
	blk := n * r.C
	base := r.addr.Addr(r.zAll)
	r.mpiDev.AllgatherAddrF32(base+uintptr(4*r.view*blk), base, blk, r.addr.InContext)
}

// peerLogits passes the teacher logits between the views of one replica on their
// backends, without the host: used when the views are goroutines of one process (the
// local transport) on backends whose Copy reads each other's buffers (nn.Sharer: host
// memory, or one GPU). Every view pulls the other views' blocks of their zAll into its
// own, on its own queue. Two marks order the queues without a host wait: a view's copy
// waits for the owner's teacher forward (mark 0), and the owner's next write of its block
// waits for every view's copies (mark 1).
type peerLogits struct {
	peer  ranks.InProcess
	own   nn.Sharer
	views []peerView // by view; this view's own entry too
}

// peerView is what a view shares with the others: its backend and its zAll.
type peerView struct {
	be   nn.Backend
	zAll nn.Buf
}

// newPeerLogits returns the exchange for r, or nil when some view's backend cannot read
// another's buffers (views on different GPUs, a CPU next to a GPU). It is a collective
// over r.peer.
func newPeerLogits(r *rank, peer ranks.InProcess) *peerLogits {
	shared := peer.Share(peerView{be: r.be, zAll: r.zAll})
	views := make([]peerView, len(shared))
	for i, s := range shared {
		views[i] = s.(peerView)
	}
	// Every view decides from the same list, so all of them take the same path.
	for _, a := range views {
		sa, ok := a.be.(nn.Sharer)
		if !ok {
			return nil
		}
		for _, b := range views {
			if !sa.Shares(b.be) {
				return nil
			}
		}
	}
	return &peerLogits{peer: peer, own: r.be.(nn.Sharer), views: views}
}

// exchange fills the other views' blocks of r.zAll (n rows of r.C logits each, in view
// order) from their owners' zAll, once every view's teacher forward is queued. The first
// barrier puts every After(o, 0) after o's Mark(0) of this update (waiting on the previous
// update's mark instead, a copy could read o's block before the teacher forward wrote it);
// the second does the same for mark 1. Neither mark is recorded again before every view
// has called After on it: Mark(1) follows the first barrier, which every view reaches
// after the previous update's After(·, 1), and Mark(0) the previous update's second
// barrier. Mark 1 is also implied by the update itself: every view downloads its scalars,
// so waits for its copies, before the all-gather of h, and writes its block again only
// after it; the exchange does not rely on that.
func (p *peerLogits) exchange(r *rank, n int) {
	be, blk := r.be, n*r.C
	p.own.Mark(0)
	p.peer.Barrier()
	for w, o := range p.views {
		if w != r.view {
			p.own.After(o.be, 0)
			be.Copy(be.View(r.zAll, w*blk, blk), be.View(o.zAll, w*blk, blk), blk)
		}
	}
	p.own.Mark(1)
	p.peer.Barrier()
	for w, o := range p.views {
		if w != r.view {
			p.own.After(o.be, 1)
		}
	}
}
