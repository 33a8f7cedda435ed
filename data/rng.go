package data

import "math/bits"

// Counter-based randomness: every random number is a pure function of (seed,
// stream, counter), so a permutation or a split can be recomputed from a few
// integers on any rank and after a restart, with no generator state to save.

// mix64 is the SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijection on
// uint64 with good avalanche, enough for shuffling (not for cryptography).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// rand64 returns the counter-th random number of stream in the family seed.
func rand64(seed, stream, counter uint64) uint64 {
	return mix64(mix64(mix64(seed^0x9e3779b97f4a7c15)+stream) + counter)
}

// below returns a number in [0, n) from the random word r, by Lemire's
// multiply-shift (bias at most n/2^64, irrelevant at dataset sizes).
func below(r uint64, n int) int {
	hi, _ := bits.Mul64(r, uint64(n))
	return int(hi)
}

// shuffle permutes v in place (Fisher-Yates) with the random numbers of (seed, stream).
func shuffle[T any](v []T, seed, stream uint64) {
	for i := len(v) - 1; i > 0; i-- {
		j := below(rand64(seed, stream, uint64(i)), i+1)
		v[i], v[j] = v[j], v[i]
	}
}
