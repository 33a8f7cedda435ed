package nn

import "math"

// RNGKey selects an independent stream of the counter-based generator. The uniform
// number for (key, index, column) is a pure function of those values, so any rank,
// any backend and any batch layout recomputes the same number.
//
// Specification (every Backend must reproduce it bit for bit):
//
//	x = Philox4x32-10(counter = (column, index, key.Step, key.Stream),
//	                  key     = (uint32(key.Seed), uint32(key.Seed>>32)))[0]
//	u = (float32(x>>9) + 0.5) · 2⁻²³        // in (0,1), exact in float32
//	Gumbel = −log(−log(float64(u)))          // evaluated in float64
//
// Philox4x32-10 is Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"
// (SC'11), as in Random123 and cuRAND: multipliers 0xD2511F53, 0xCD9E8D57, Weyl
// key increments 0x9E3779B9, 0xBB67AE85, ten rounds, key bumped between rounds.
//
// MCT keys: pseudo-label sampling uses Step = update step, Stream = view, index =
// global example index, column = class. Dropout uses Stream = StreamDropout+layer,
// Step = the probe's forward counter, index = row, column = feature.
type RNGKey struct {
	Seed   uint64
	Step   uint32
	Stream uint32
}

// StreamDropout is the first Stream value used by dropout layers (layer l uses
// StreamDropout+l), far from the small view numbers used for sampling.
const StreamDropout = 1 << 30

const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9
	philoxW1 = 0xBB67AE85
)

// Philox4x32 runs the ten-round Philox4x32 bijection on counter c with key k.
func Philox4x32(c [4]uint32, k [2]uint32) [4]uint32 {
	for i := 0; i < 10; i++ {
		if i > 0 {
			k[0] += philoxW0
			k[1] += philoxW1
		}
		p0 := uint64(philoxM0) * uint64(c[0])
		p1 := uint64(philoxM1) * uint64(c[2])
		c = [4]uint32{
			uint32(p1>>32) ^ c[1] ^ k[0],
			uint32(p1),
			uint32(p0>>32) ^ c[3] ^ k[1],
			uint32(p0),
		}
	}
	return c
}

// Uniform returns the float32 uniform in (0,1) for (key, index, column).
func Uniform(key RNGKey, index, column uint32) float32 {
	x := Philox4x32([4]uint32{column, index, key.Step, key.Stream},
		[2]uint32{uint32(key.Seed), uint32(key.Seed >> 32)})[0]
	return (float32(x>>9) + 0.5) * (1.0 / (1 << 23))
}

// Gumbel returns the standard Gumbel variate −log(−log u) for (key, index, column).
func Gumbel(key RNGKey, index, column uint32) float64 {
	return -math.Log(-math.Log(float64(Uniform(key, index, column))))
}
