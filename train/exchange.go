package train

import (
	"os"

	"mct/nn"
	"mct/ranks"
)

// peerLogits passes the teacher logits between the views of one replica on their
// backends, without the host: used when the views are goroutines of one process (the
// local transport) on backends whose Copy reads each other's buffers (nn.Sharer: host
// memory, or one GPU). Every view pulls the other views' blocks of their zAll into its
// own, on its own queue. Two marks order the queues without a host wait: a view's copy
// waits for the owner's teacher forward (mark 0), and the owner's next write of its block
// waits for every view's copies (mark 1). Otherwise — MPI, views on different GPUs, or
// MCT_DEVICE_EXCHANGE=0 — the logits go through the host (mctUpdate: download,
// all-gather, upload).
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

// newPeerLogits returns the exchange for r, or nil when the logits must go through the
// host. It is a collective over r.peer on the local transport.
func newPeerLogits(r *rank) *peerLogits {
	in, ok := r.peer.(ranks.InProcess)
	can := []int64{0}
	if ok && os.Getenv("MCT_DEVICE_EXCHANGE") != "0" {
		can[0] = 1
	}
	// Share is a collective: call it only if every view will.
	if r.peer.AllreduceI64(can, ranks.Min); can[0] == 0 {
		return nil
	}
	shared := in.Share(peerView{be: r.be, zAll: r.zAll})
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
	return &peerLogits{peer: in, own: r.be.(nn.Sharer), views: views}
}

// exchange fills the other views' blocks of r.zAll (n rows of r.C logits each, in view
// order) from their owners' zAll, once every view's teacher forward is queued. The two
// barriers keep a mark from being recorded again before every view has waited for it.
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
