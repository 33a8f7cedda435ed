package ranks_test

import (
	"fmt"

	"mct/ranks"
)

// Four ranks in one process sum their gradients; every rank gets the same bits.
func ExampleRunLocal() {
	sums := make([][]float32, 4)
	err := ranks.RunLocal(4, func(c ranks.Comm) error {
		grad := []float32{float32(c.Rank()), 1}
		c.AllreduceF32(grad)
		sums[c.Rank()] = grad
		return nil
	})
	fmt.Println(sums, err)
	// Output: [[6 4] [6 4] [6 4] [6 4]] <nil>
}

// Six ranks train two views, three replicas each: peer groups exchange
// pseudo-labels between views, pools average gradients between replicas.
func ExampleTopology() {
	l, err := ranks.NewLayout(6, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	rows := make([]string, 6)
	err = ranks.RunLocal(l.World(), func(world ranks.Comm) error {
		peer, pool, err := ranks.Topology(world, l)
		if err != nil {
			return err
		}
		defer peer.Close()
		defer pool.Close()
		r := world.Rank()
		rows[r] = fmt.Sprintf("rank %d: view %d (peer rank %d of %d), replica %d (pool rank %d of %d)",
			r, l.View(r), peer.Rank(), peer.Size(), l.Replica(r), pool.Rank(), pool.Size())
		return nil
	})
	for _, row := range rows {
		fmt.Println(row)
	}
	fmt.Println(err)
	// Output:
	// rank 0: view 0 (peer rank 0 of 2), replica 0 (pool rank 0 of 3)
	// rank 1: view 1 (peer rank 1 of 2), replica 0 (pool rank 0 of 3)
	// rank 2: view 0 (peer rank 0 of 2), replica 1 (pool rank 1 of 3)
	// rank 3: view 1 (peer rank 1 of 2), replica 1 (pool rank 1 of 3)
	// rank 4: view 0 (peer rank 0 of 2), replica 2 (pool rank 2 of 3)
	// rank 5: view 1 (peer rank 1 of 2), replica 2 (pool rank 2 of 3)
	// <nil>
}

func ExampleNewLayout() {
	_, err := ranks.NewLayout(3, 2)
	fmt.Println(err)
	// Output: world size 3 is not a multiple of the 2 views: run mpirun -np 2 or -np 4
}
