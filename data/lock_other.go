//go:build !unix

package data

// lockFile is a no-op where flock is unavailable; concurrent builders then
// duplicate work but the atomic rename keeps cache entries whole.
func lockFile(path string) (unlock func()) { return func() {} }
