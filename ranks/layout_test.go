package ranks

import (
	"slices"
	"testing"
)

func TestNewLayout(t *testing.T) {
	for _, tc := range []struct {
		world, views int
		want         Layout
		err          string
	}{
		{world: 4, views: 2, want: Layout{Views: 2, Replicas: 2}},
		{world: 3, views: 3, want: Layout{Views: 3, Replicas: 1}},
		{world: 1, views: 1, want: Layout{Views: 1, Replicas: 1}},
		{world: 3, views: 2, err: "world size 3 is not a multiple of the 2 views: run mpirun -np 2 or -np 4"},
		{world: 7, views: 3, err: "world size 7 is not a multiple of the 3 views: run mpirun -np 6 or -np 9"},
		{world: 1, views: 2, err: "world size 1 is not a multiple of the 2 views: run mpirun -np 2"},
		{world: 4, views: 0, err: "0 views: need at least 1"},
		{world: 0, views: 2, err: "world size 0: need at least 1 rank"},
	} {
		got, err := NewLayout(tc.world, tc.views)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("NewLayout(%d, %d) error = %v, want %q", tc.world, tc.views, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("NewLayout(%d, %d) = %+v, %v; want %+v", tc.world, tc.views, got, err, tc.want)
		}
	}
}

func TestLayoutRanks(t *testing.T) {
	l := Layout{Views: 3, Replicas: 2}
	// The reference's convention: rank r trains view r mod V, replica r div V.
	views := []int{0, 1, 2, 0, 1, 2}
	replicas := []int{0, 0, 0, 1, 1, 1}
	for r := range l.World() {
		if l.View(r) != views[r] || l.Replica(r) != replicas[r] || l.Rank(views[r], replicas[r]) != r {
			t.Errorf("rank %d: view %d replica %d, back to rank %d", r, l.View(r), l.Replica(r), l.Rank(l.View(r), l.Replica(r)))
		}
	}
}

func TestTopology(t *testing.T) {
	l := Layout{Views: 3, Replicas: 2}
	peers := make([][]int64, l.World())
	pools := make([][]int64, l.World())
	err := RunLocal(l.World(), func(c Comm) error {
		peer, pool, err := Topology(c, l)
		if err != nil {
			return err
		}
		defer peer.Close()
		defer pool.Close()
		r := c.Rank()
		peers[r] = make([]int64, peer.Size())
		peer.AllgatherI64([]int64{int64(r)}, peers[r])
		pools[r] = make([]int64, pool.Size())
		pool.AllgatherI64([]int64{int64(r)}, pools[r])
		if peer.Rank() != l.View(r) || pool.Rank() != l.Replica(r) {
			t.Errorf("rank %d: peer rank %d (want its view %d), pool rank %d (want its replica %d)",
				r, peer.Rank(), l.View(r), pool.Rank(), l.Replica(r))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := range l.World() {
		wantPeer := []int64{0, 1, 2}
		if l.Replica(r) == 1 {
			wantPeer = []int64{3, 4, 5}
		}
		wantPool := []int64{int64(l.View(r)), int64(l.View(r) + 3)}
		if !slices.Equal(peers[r], wantPeer) || !slices.Equal(pools[r], wantPool) {
			t.Errorf("rank %d: peer %v pool %v, want %v and %v", r, peers[r], pools[r], wantPeer, wantPool)
		}
	}
}

func TestTopologyChecksWorldSize(t *testing.T) {
	err := RunLocal(4, func(c Comm) error {
		_, _, err := Topology(c, Layout{Views: 3, Replicas: 1})
		return err
	})
	if err == nil {
		t.Fatal("Topology accepted a layout of 3 ranks on a world of 4")
	}
}
