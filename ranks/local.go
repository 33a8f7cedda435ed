package ranks

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
)

// RunLocal runs fn on n ranks, each a goroutine of this process with its own
// world Comm, and returns when all of them have returned. The collectives have
// the same semantics as on MPI, Split included, and the same bits: sums are
// formed in rank order and every rank receives identical results.
//
// If a rank returns an error, panics or calls Abort, the job is cancelled:
// every other rank leaves at its next collective (or while blocked in one)
// through runtime.Goexit, so deferred calls run but no code after the
// collective does. A rank that returns nil while another still waits for it in
// a collective is reported as an error too, instead of a deadlock. The result
// joins the errors of the ranks that failed, in rank order; an Abort gives an
// *AbortError (use errors.As).
//
// Ranks that only compute between collectives are not interrupted; fn should
// reach a collective regularly if it must stop promptly.
func RunLocal(n int, fn func(c Comm) error) error {
	if n < 1 {
		return fmt.Errorf("ranks.RunLocal: %d ranks; need at least 1", n)
	}
	j := &job{done: make(chan struct{}), errs: make([]error, n)}
	members := make([]int, n)
	for r := range members {
		members[r] = r
	}
	world := j.newGroup(members)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() { j.run(r, fn, &localComm{g: world, rank: r, world: r}) })
	}
	wg.Wait()
	return errors.Join(j.errs...)
}

// job is one RunLocal call: the ranks' fate and every communicator made in it.
type job struct {
	done     chan struct{} // closed on the first failure: everyone leaves
	doneOnce sync.Once

	mu       sync.Mutex
	errs     []error // by world rank
	groups   []*group
	returned []int // world ranks whose fn has returned nil
}

func (j *job) newGroup(members []int) *group {
	g := &group{
		job:     j,
		members: members,
		release: make(chan struct{}),
		dead:    make(chan struct{}),
		slots:   make([]deposit, len(members)),
		created: make([]*group, len(members)),
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.groups = append(j.groups, g)
	for _, w := range j.returned {
		if slices.Contains(members, w) {
			g.markDead(w)
		}
	}
	return g
}

// fail records rank's error (the first one only) and cancels the job.
func (j *job) fail(rank int, err error) {
	j.mu.Lock()
	if j.errs[rank] == nil {
		j.errs[rank] = err
	}
	j.mu.Unlock()
	j.doneOnce.Do(func() { close(j.done) })
}

func (j *job) cancelled() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// run calls fn for one rank and turns every way out of it into the job's state.
func (j *job) run(rank int, fn func(Comm) error, c *localComm) {
	finished := false
	defer func() {
		if finished {
			return
		}
		if p := recover(); p != nil {
			j.fail(rank, fmt.Errorf("rank %d panicked: %v\n%s", rank, p, debug.Stack()))
			return
		}
		// runtime.Goexit: ours after cancellation, or the caller's own
		// (t.FailNow in a rank, say), which must not leave the others waiting.
		if !j.cancelled() {
			j.fail(rank, fmt.Errorf("rank %d exited through runtime.Goexit", rank))
		}
	}()
	err := fn(c)
	finished = true
	if err != nil {
		j.fail(rank, fmt.Errorf("rank %d: %w", rank, err))
		return
	}
	// Any communicator this rank belongs to can no longer complete a collective.
	j.mu.Lock()
	j.returned = append(j.returned, rank)
	for _, g := range j.groups {
		if slices.Contains(g.members, rank) {
			g.markDead(rank)
		}
	}
	j.mu.Unlock()
}

// group is the state shared by the ranks of one local communicator.
//
// A collective is a few phases separated by sync(): each rank publishes its
// buffer in its own slot, and after the barrier reads the others' slots
// directly (no copies through the group). Every collective ends with a
// barrier after its last read of the slots, and a rank rewrites its slot only
// in its next collective, so readers never race with writers.
type group struct {
	job     *job
	members []int // world rank of each rank of the group

	mu       sync.Mutex
	arrived  int
	release  chan struct{} // closed when the current barrier generation completes
	dead     chan struct{} // closed when a member has returned from fn
	deadOnce sync.Once
	deadRank int

	slots   []deposit
	created []*group // Split: the group a color's leader made, at the leader's index
}

// deposit is what a rank brings to a collective; the op and length let every
// rank check that all of them called the same collective with the same shape.
type deposit struct {
	op   string
	n    int
	root int
	data any
}

func (g *group) markDead(worldRank int) {
	g.deadOnce.Do(func() {
		g.deadRank = worldRank
		close(g.dead)
	})
}

var _ InProcess = (*localComm)(nil)

// localComm is one rank's handle on a group.
type localComm struct {
	g      *group
	rank   int // in g
	world  int // in the job, for errors
	closed bool
}

func (c *localComm) Rank() int { return c.rank }
func (c *localComm) Size() int { return len(c.g.members) }

func (c *localComm) check() {
	if c.closed {
		panic("ranks: use of a closed Comm")
	}
}

// sync is a barrier over the group that leaves the goroutine if the job is
// cancelled or can never complete.
func (c *localComm) sync() {
	g := c.g
	g.mu.Lock()
	ch := g.release
	g.arrived++
	if g.arrived == len(g.members) {
		g.arrived = 0
		g.release = make(chan struct{})
		g.mu.Unlock()
		close(ch)
		return
	}
	g.mu.Unlock()
	select {
	case <-ch:
		return
	case <-g.job.done:
	case <-g.dead:
		select {
		case <-ch: // the member returned after completing this barrier
			return
		default:
		}
		g.job.fail(c.world, fmt.Errorf("rank %d waits in a collective that rank %d will never join: it has returned", c.world, g.deadRank))
	}
	runtime.Goexit()
}

// enter publishes this rank's deposit, waits for the others and checks that
// they all called the same collective with the same shape.
func (c *localComm) enter(d deposit) {
	c.check()
	c.g.slots[c.rank] = d
	c.sync()
	for r, o := range c.g.slots {
		if o.op != d.op || o.n != d.n || o.root != d.root {
			panic(fmt.Sprintf("ranks: rank %d called %s(n=%d, root=%d) while rank %d called %s(n=%d, root=%d)",
				c.rank, d.op, d.n, d.root, r, o.op, o.n, o.root))
		}
	}
}

func (c *localComm) AllgatherF32(send, recv []float32) { localAllgather(c, "AllgatherF32", send, recv) }
func (c *localComm) AllgatherF64(send, recv []float64) { localAllgather(c, "AllgatherF64", send, recv) }
func (c *localComm) AllgatherI64(send, recv []int64)   { localAllgather(c, "AllgatherI64", send, recv) }

func localAllgather[T any](c *localComm, op string, send, recv []T) {
	n := len(send)
	checkGather(op, c.Size(), n, len(recv))
	c.enter(deposit{op: op, n: n, data: send})
	for r, d := range c.g.slots {
		dst := recv[r*n : (r+1)*n]
		if r == c.rank && n > 0 && &dst[0] == &send[0] {
			continue // in place: others may be reading this block right now
		}
		copy(dst, d.data.([]T))
	}
	c.sync() // senders may not reuse send until everyone has copied it
}

// Share implements InProcess.
func (c *localComm) Share(v any) []any {
	c.enter(deposit{op: "Share", data: v})
	all := make([]any, c.Size())
	for r, d := range c.g.slots {
		all[r] = d.data
	}
	c.sync() // a rank may rewrite its slot only after everyone has read it
	return all
}

func (c *localComm) AllreduceF32(buf []float32) { localAllreduce(c, "AllreduceF32", buf, Sum) }
func (c *localComm) AllreduceF64(buf []float64) { localAllreduce(c, "AllreduceF64", buf, Sum) }
func (c *localComm) AllreduceI64(buf []int64, op Op) {
	localAllreduce(c, "AllreduceI64/"+op.String(), buf, op)
}

// localAllreduce is a reduce-scatter then an allgather in shared memory: rank r
// reduces chunk r of every rank's buffer into its own buffer (nobody else
// reads or writes that chunk of it meanwhile), then every rank copies the
// other chunks from their owners.
func localAllreduce[T number](c *localComm, op string, buf []T, rop Op) {
	n := len(buf)
	c.enter(deposit{op: op, n: n, data: buf})
	size := c.Size()
	lo, hi := chunk(n, size, c.rank)
	srcs := make([][]T, size)
	for r, d := range c.g.slots {
		srcs[r] = d.data.([]T)[lo:hi]
	}
	reduceInto(buf[lo:hi], srcs, rop)
	c.sync()
	for r, d := range c.g.slots {
		if r != c.rank {
			rlo, rhi := chunk(n, size, r)
			copy(buf[rlo:rhi], d.data.([]T)[rlo:rhi])
		}
	}
	c.sync() // owners may not change their buffers until everyone has copied
}

func (c *localComm) Bcast(buf []byte, root int) {
	if root < 0 || root >= c.Size() {
		panic(fmt.Sprintf("ranks: Bcast root %d outside a group of %d", root, c.Size()))
	}
	c.enter(deposit{op: "Bcast", n: len(buf), root: root, data: buf})
	if c.rank != root {
		copy(buf, c.g.slots[root].data.([]byte))
	}
	c.sync()
}

func (c *localComm) Barrier() {
	c.enter(deposit{op: "Barrier"})
	c.sync() // a rank may rewrite its slot only after everyone has checked it
}

type colorKey struct{ color, key int }

func (c *localComm) Split(color, key int) (Comm, error) {
	if color < 0 {
		color = Undefined
	}
	c.enter(deposit{op: "Split", data: colorKey{color, key}})
	var mine []int // ranks of this group in the new one, in new-rank order
	if color != Undefined {
		for r, d := range c.g.slots {
			if d.data.(colorKey).color == color {
				mine = append(mine, r)
			}
		}
		slices.SortStableFunc(mine, func(a, b int) int {
			return cmp.Compare(c.g.slots[a].data.(colorKey).key, c.g.slots[b].data.(colorKey).key)
		})
		if mine[0] == c.rank { // the leader makes the group for its color
			members := make([]int, len(mine))
			for i, r := range mine {
				members[i] = c.g.members[r]
			}
			c.g.created[c.rank] = c.g.job.newGroup(members)
		}
	}
	c.sync()
	if color == Undefined {
		return nil, nil
	}
	return &localComm{g: c.g.created[mine[0]], rank: slices.Index(mine, c.rank), world: c.world}, nil
}

func (c *localComm) Abort(code int) {
	c.g.job.fail(c.world, &AbortError{Rank: c.world, Code: code})
	runtime.Goexit()
}

func (c *localComm) Close() error {
	c.check()
	c.closed = true
	return nil
}
