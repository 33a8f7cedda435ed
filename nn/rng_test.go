package nn

import (
	"math"
	"testing"
)

// Known-answer vectors of Random123's kat_vectors for philox4x32_10.
func TestPhiloxKnownAnswers(t *testing.T) {
	cases := []struct {
		c    [4]uint32
		k    [2]uint32
		want [4]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff},
			[4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0},
			[4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	}
	for _, c := range cases {
		if got := Philox4x32(c.c, c.k); got != c.want {
			t.Errorf("Philox4x32(%08x, %08x) = %08x, want %08x", c.c, c.k, got, c.want)
		}
	}
}

func TestUniformRangeAndMoments(t *testing.T) {
	key := RNGKey{Seed: 0x0123456789abcdef, Step: 7, Stream: 2}
	const n = 200000
	var s, s2 float64
	for i := uint32(0); i < n; i++ {
		u := Uniform(key, i/10, i%10)
		if !(u > 0 && u < 1) {
			t.Fatalf("u=%g outside (0,1)", u)
		}
		s += float64(u)
		s2 += float64(u) * float64(u)
	}
	mean, vr := s/n, s2/n-(s/n)*(s/n)
	// Standard errors: 1/sqrt(12n) ≈ 6.5e-4 for the mean; 5 sigma bounds.
	if math.Abs(mean-0.5) > 3.3e-3 || math.Abs(vr-1.0/12) > 2e-3 {
		t.Fatalf("uniform mean %g var %g, want 0.5 and 0.0833", mean, vr)
	}
	// The Gumbel has mean Euler's γ = 0.5772 and variance π²/6.
	var g float64
	for i := uint32(0); i < n; i++ {
		g += Gumbel(key, i, 3)
	}
	if g/n < 0.5772-0.015 || g/n > 0.5772+0.015 {
		t.Fatalf("Gumbel mean %g, want 0.5772", g/n)
	}
	// Different keys must give different streams.
	if Uniform(key, 1, 1) == Uniform(RNGKey{Seed: key.Seed, Step: 8, Stream: 2}, 1, 1) &&
		Uniform(key, 2, 1) == Uniform(RNGKey{Seed: key.Seed, Step: 8, Stream: 2}, 2, 1) {
		t.Fatal("Step does not change the stream")
	}
}
