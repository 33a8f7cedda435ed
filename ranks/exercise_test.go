package ranks

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// rankValues returns n float64 values that only rank r's seed determines,
// spread over many magnitudes and signs so that the order of a sum changes
// its rounding.
func rankValues(r, n int) []float64 {
	rng := rand.New(rand.NewPCG(uint64(r)+1, 42))
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6))
	}
	return v
}

func rankF32(r, n int) []float32 {
	v := make([]float32, n)
	for i, x := range rankValues(r, n) {
		v[i] = float32(x)
	}
	return v
}

// exercise calls every collective of c with inputs that depend on the rank,
// checks each result against values computed here independently, and returns
// the raw bits of every result so that two transports can be compared.
func exercise(c Comm) ([]byte, error) {
	r, p := c.Rank(), c.Size()
	var out bytes.Buffer
	record := func(v any) { binary.Write(&out, binary.LittleEndian, v) }
	fail := func(format string, a ...any) ([]byte, error) {
		return nil, fmt.Errorf("rank %d of %d: "+format, append([]any{r, p}, a...)...)
	}

	// Allgather: block k of the result is rank k's send.
	send := []float32{float32(10 * r), float32(10*r + 1), float32(10*r + 2)}
	recv := make([]float32, 3*p)
	c.AllgatherF32(send, recv)
	for k := range p {
		if want := []float32{float32(10 * k), float32(10*k + 1), float32(10*k + 2)}; !slices.Equal(recv[3*k:3*k+3], want) {
			return fail("AllgatherF32 block %d = %v, want %v", k, recv[3*k:3*k+3], want)
		}
	}
	record(recv)
	// In place: send is this rank's own block of recv.
	inplace := make([]float64, 2*p)
	inplace[2*r], inplace[2*r+1] = float64(r)+0.5, -float64(r)
	c.AllgatherF64(inplace[2*r:2*r+2], inplace)
	for k := range p {
		if inplace[2*k] != float64(k)+0.5 || inplace[2*k+1] != -float64(k) {
			return fail("in-place AllgatherF64 block %d = %v", k, inplace[2*k:2*k+2])
		}
	}
	record(inplace)
	ids := make([]int64, p)
	c.AllgatherI64([]int64{int64(r)*1e12 + 7}, ids)
	for k, v := range ids {
		if v != int64(k)*1e12+7 {
			return fail("AllgatherI64[%d] = %d", k, v)
		}
	}
	record(ids)
	c.AllgatherF32(nil, nil) // empty blocks are legal and move nothing

	// Sums: exact bits of a left-to-right sum in rank order. Lengths below,
	// at and above the rank count exercise empty and uneven chunks.
	for _, n := range []int{0, 1, p - 1, p, 3*p + 1, 1001} {
		if n < 0 {
			continue
		}
		f32 := rankF32(r, n)
		f64 := rankValues(r, n)
		c.AllreduceF32(f32)
		c.AllreduceF64(f64)
		want32, want64 := rankF32(0, n), rankValues(0, n)
		for k := 1; k < p; k++ {
			x32, x64 := rankF32(k, n), rankValues(k, n)
			for i := range n {
				want32[i] += x32[i]
				want64[i] += x64[i]
			}
		}
		for i := range n {
			if math.Float32bits(f32[i]) != math.Float32bits(want32[i]) {
				return fail("AllreduceF32 n=%d [%d] = %g, want %g (rank-order sum)", n, i, f32[i], want32[i])
			}
			if math.Float64bits(f64[i]) != math.Float64bits(want64[i]) {
				return fail("AllreduceF64 n=%d [%d] = %g, want %g (rank-order sum)", n, i, f64[i], want64[i])
			}
		}
		record(f32)
		record(f64)
	}
	for _, op := range []Op{Sum, Max, Min} {
		v := []int64{int64(r)*5 - 3, math.MaxInt64 - int64(r), int64(r * r)}
		c.AllreduceI64(v, op)
		var want []int64
		for k := range p {
			x := []int64{int64(k)*5 - 3, math.MaxInt64 - int64(k), int64(k * k)}
			if k == 0 {
				want = x
				continue
			}
			for i := range want {
				switch op {
				case Sum:
					want[i] += x[i]
				case Max:
					want[i] = max(want[i], x[i])
				case Min:
					want[i] = min(want[i], x[i])
				}
			}
		}
		if !slices.Equal(v, want) {
			return fail("AllreduceI64 %v = %v, want %v", op, v, want)
		}
		record(v)
	}

	// Bcast from the last rank.
	msg := []byte(fmt.Sprintf("from rank %03d", r))
	c.Bcast(msg, p-1)
	if want := fmt.Sprintf("from rank %03d", p-1); string(msg) != want {
		return fail("Bcast got %q, want %q", msg, want)
	}
	record(msg)
	c.Barrier()

	// Split by parity, ordered by descending world rank.
	sub, err := c.Split(r%2, -r)
	if err != nil {
		return fail("Split: %v", err)
	}
	var members []int64
	for k := p - 1; k >= 0; k-- {
		if k%2 == r%2 {
			members = append(members, int64(k))
		}
	}
	if sub.Size() != len(members) || members[sub.Rank()] != int64(r) {
		return fail("Split(parity) gave rank %d of %d, want %d of %d", sub.Rank(), sub.Size(), slices.Index(members, int64(r)), len(members))
	}
	got := make([]int64, sub.Size())
	sub.AllgatherI64([]int64{int64(r)}, got)
	if !slices.Equal(got, members) {
		return fail("Split(parity) gathers world ranks %v, want %v", got, members)
	}
	record(got)
	// A collective on the subgroup must not mix with the parent's.
	part := []float32{float32(r)}
	sub.AllreduceF32(part)
	var wantPart float32
	for _, m := range members {
		wantPart += float32(m)
	}
	if part[0] != wantPart {
		return fail("AllreduceF32 on the parity group = %g, want %g", part[0], wantPart)
	}
	if err := sub.Close(); err != nil {
		return fail("Close: %v", err)
	}
	// Rank 0 stays out of the next split.
	color := 0
	if r == 0 {
		color = Undefined
	}
	rest, err := c.Split(color, 0)
	if err != nil {
		return fail("Split(Undefined): %v", err)
	}
	switch {
	case r == 0 && rest != nil:
		return fail("Split with color Undefined returned a Comm")
	case r > 0 && (rest == nil || rest.Size() != p-1 || rest.Rank() != r-1):
		return fail("Split without rank 0 gave %v", rest)
	case r > 0:
		rest.Barrier()
		if err := rest.Close(); err != nil {
			return fail("Close: %v", err)
		}
	}

	// The MCT topology, when the world splits into two views.
	if p%2 == 0 {
		l, err := NewLayout(p, 2)
		if err != nil {
			return fail("%v", err)
		}
		peer, pool, err := Topology(c, l)
		if err != nil {
			return fail("%v", err)
		}
		if peer.Rank() != l.View(r) || peer.Size() != 2 || pool.Rank() != l.Replica(r) || pool.Size() != p/2 {
			return fail("Topology: peer %d/%d, pool %d/%d", peer.Rank(), peer.Size(), pool.Rank(), pool.Size())
		}
		peers := make([]int64, 2)
		peer.AllgatherI64([]int64{int64(r)}, peers)
		if want := []int64{int64(l.Rank(0, l.Replica(r))), int64(l.Rank(1, l.Replica(r)))}; !slices.Equal(peers, want) {
			return fail("peer group holds world ranks %v, want %v", peers, want)
		}
		pooled := make([]int64, p/2)
		pool.AllgatherI64([]int64{int64(r)}, pooled)
		for k, w := range pooled {
			if w != int64(l.Rank(l.View(r), k)) {
				return fail("pool group holds world ranks %v", pooled)
			}
		}
		record(peers)
		record(pooled)
		peer.Close()
		pool.Close()
	}
	return out.Bytes(), nil
}
