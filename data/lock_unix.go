//go:build unix

package data

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on path (created if needed), waiting for
// other holders, and returns its release. Failing to lock is not an error: the
// caller's work stays correct without the lock, only possibly duplicated.
func lockFile(path string) (unlock func()) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return func() {}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}
