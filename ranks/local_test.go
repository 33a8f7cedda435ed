package ranks

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// within fails the test if f does not return in d: a deadlock must fail, not hang CI.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("did not finish within %v: deadlock", d)
	}
}

// runExercise runs exercise on n local ranks and returns each rank's record.
func runExercise(t *testing.T, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	var err error
	within(t, 30*time.Second, func() {
		err = RunLocal(n, func(c Comm) error {
			b, err := exercise(c)
			out[c.Rank()] = b
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLocalCollectives(t *testing.T) {
	for n := 1; n <= 6; n++ {
		first := runExercise(t, n)
		again := runExercise(t, n)
		for r := range n {
			if !bytes.Equal(first[r], again[r]) {
				t.Errorf("%d ranks: rank %d got different bits on a second run", n, r)
			}
		}
	}
}

// The determinism tests above mean something only if the order of a float32
// sum changes its bits for such inputs; check that it does.
func TestSumOrderMatters(t *testing.T) {
	const p, n = 4, 1001
	xs := make([][]float32, p)
	for r := range xs {
		xs[r] = rankF32(r, n)
	}
	differ := 0
	for i := range n {
		fwd, bwd := xs[0][i], xs[p-1][i]
		for r := 1; r < p; r++ {
			fwd += xs[r][i]
			bwd += xs[p-1-r][i]
		}
		if math.Float32bits(fwd) != math.Float32bits(bwd) {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("forward and backward sums agree everywhere: the inputs cannot tell summation orders apart")
	}
	t.Logf("%d of %d sums depend on the order", differ, n)
}

// ranksFailing runs 4 ranks where rank 2 misbehaves in the middle of a loop of
// collectives that the others would otherwise never leave.
func ranksFailing(t *testing.T, misbehave func(c Comm) error) error {
	t.Helper()
	var err error
	within(t, 10*time.Second, func() {
		err = RunLocal(4, func(c Comm) error {
			buf := make([]float32, 1000)
			for i := 0; ; i++ {
				if c.Rank() == 2 && i == 5 {
					return misbehave(c)
				}
				c.AllreduceF32(buf)
				c.Barrier()
			}
		})
	})
	if err == nil {
		t.Fatal("RunLocal returned nil although rank 2 failed")
	}
	return err
}

func TestLocalErrorCancelsOthers(t *testing.T) {
	err := ranksFailing(t, func(Comm) error { return errors.New("disk full") })
	if err.Error() != "rank 2: disk full" {
		t.Errorf("error = %q, want only rank 2's", err)
	}
}

func TestLocalPanicCancelsOthers(t *testing.T) {
	err := ranksFailing(t, func(Comm) error { panic("index out of range") })
	if !strings.HasPrefix(err.Error(), "rank 2 panicked: index out of range") {
		t.Errorf("error = %q", err)
	}
}

func TestLocalAbort(t *testing.T) {
	err := ranksFailing(t, func(c Comm) error { c.Abort(3); return nil })
	var ab *AbortError
	if !errors.As(err, &ab) || ab.Rank != 2 || ab.Code != 3 {
		t.Errorf("error = %v, want an AbortError from rank 2 with code 3", err)
	}
}

func TestLocalReturnedRankIsReported(t *testing.T) {
	err := ranksFailing(t, func(Comm) error { return nil })
	if !strings.Contains(err.Error(), "that rank 2 will never join") {
		t.Errorf("error = %q", err)
	}
}

// A rank that returns after its last collective is normal, not a deadlock.
func TestLocalRanksFinishAtDifferentTimes(t *testing.T) {
	within(t, 10*time.Second, func() {
		err := RunLocal(3, func(c Comm) error {
			c.Barrier()
			if c.Rank() == 1 {
				time.Sleep(50 * time.Millisecond)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
}

func TestLocalMismatchedCollectivesPanic(t *testing.T) {
	var err error
	within(t, 10*time.Second, func() {
		err = RunLocal(2, func(c Comm) error {
			send := make([]float32, 2+c.Rank())
			c.AllgatherF32(send, make([]float32, 2*len(send)))
			return nil
		})
	})
	if err == nil || !strings.Contains(err.Error(), "called AllgatherF32(n=2") {
		t.Errorf("error = %v, want a report of the mismatched lengths", err)
	}
}

func TestLocalClosedCommPanics(t *testing.T) {
	err := RunLocal(1, func(c Comm) error {
		c.Close()
		c.Barrier()
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "use of a closed Comm") {
		t.Errorf("error = %v", err)
	}
}

func TestRunLocalNeedsRanks(t *testing.T) {
	if err := RunLocal(0, func(Comm) error { return nil }); err == nil {
		t.Error("RunLocal(0) succeeded")
	}
}

// Share hands every rank the others' values themselves, in rank order, also on a
// communicator from Split; a pointer shared is the rank's own pointer.
func TestLocalShare(t *testing.T) {
	const n = 4
	own := make([]*int, n)
	got := make([][]any, n)
	sub := make([][]any, n)
	within(t, 10*time.Second, func() {
		err := RunLocal(n, func(c Comm) error {
			p := new(int)
			*p = 10 * c.Rank()
			own[c.Rank()] = p
			got[c.Rank()] = c.(InProcess).Share(p)
			odd, err := c.Split(c.Rank()%2, -c.Rank()) // reversed order within each color
			if err != nil {
				return err
			}
			sub[c.Rank()] = odd.(InProcess).Share(c.Rank())
			return odd.Close()
		})
		if err != nil {
			t.Error(err)
		}
	})
	for r := range n {
		for q := range n {
			if got[r][q] != any(own[q]) {
				t.Errorf("rank %d: Share gave %v for rank %d, want its pointer %p", r, got[r][q], q, own[q])
			}
		}
		want := []any{3, 1}
		if r%2 == 0 {
			want = []any{2, 0}
		}
		if len(sub[r]) != 2 || sub[r][0] != want[0] || sub[r][1] != want[1] {
			t.Errorf("rank %d: Share on its Split group gave %v, want %v", r, sub[r], want)
		}
	}
}
