package ranks

import (
	"errors"
	"fmt"
)

// Layout is how the ranks of the world are assigned to MCT's views: W = Views ×
// Replicas ranks, rank r trains view r mod Views as replica r div Views (the
// reference implementation's convention).
type Layout struct {
	Views    int // V: models trained on different views of the data
	Replicas int // R: data-parallel copies of each view's model
}

// NewLayout assigns world ranks to views, or explains which world sizes would work.
func NewLayout(world, views int) (Layout, error) {
	if views < 1 {
		return Layout{}, fmt.Errorf("%d views: need at least 1", views)
	}
	if world < 1 {
		return Layout{}, fmt.Errorf("world size %d: need at least 1 rank", world)
	}
	if world%views != 0 {
		below, above := world/views*views, (world/views+1)*views
		if below == 0 {
			return Layout{}, fmt.Errorf("world size %d is not a multiple of the %d views: run mpirun -np %d", world, views, above)
		}
		return Layout{}, fmt.Errorf("world size %d is not a multiple of the %d views: run mpirun -np %d or -np %d", world, views, below, above)
	}
	return Layout{Views: views, Replicas: world / views}, nil
}

// World is the number of ranks the layout needs.
func (l Layout) World() int { return l.Views * l.Replicas }

// View is the view that world rank r trains.
func (l Layout) View(r int) int { return r % l.Views }

// Replica is the replica index of world rank r.
func (l Layout) Replica(r int) int { return r / l.Views }

// Rank is the world rank that trains replica replica of view view.
func (l Layout) Rank(view, replica int) int { return replica*l.Views + view }

// Topology splits world into the two communicators an MCT rank talks on:
//   - peer: the ranks of the same replica, one per view, ordered by view
//     (peer.Rank() == the view), for the pseudo-label logits and the
//     meta-feedback;
//   - pool: the replicas of the same view, ordered by replica
//     (pool.Rank() == the replica), for the data-parallel gradient sums.
//
// It is a collective over world. The caller closes both.
func Topology(world Comm, l Layout) (peer, pool Comm, err error) {
	if l.Views < 1 || l.Replicas < 1 {
		return nil, nil, fmt.Errorf("layout %d views × %d replicas: both must be at least 1", l.Views, l.Replicas)
	}
	if world.Size() != l.World() {
		return nil, nil, fmt.Errorf("world size %d does not match the layout of %d views × %d replicas = %d ranks",
			world.Size(), l.Views, l.Replicas, l.World())
	}
	r := world.Rank()
	peer, err = world.Split(l.Replica(r), l.View(r))
	if err != nil {
		return nil, nil, fmt.Errorf("split the peer communicator: %w", err)
	}
	pool, err = world.Split(l.View(r), l.Replica(r))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("split the pool communicator: %w", err), peer.Close())
	}
	return peer, pool, nil
}
