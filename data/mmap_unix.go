//go:build unix

package data

import (
	"os"
	"syscall"
)

// mapFile maps the whole file copy-on-write: readers see the file, writers get
// private pages, so a caller that scales features in place cannot corrupt it.
func mapFile(f *os.File, size int64) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
}
