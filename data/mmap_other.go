//go:build !unix

package data

import (
	"errors"
	"os"
)

// mapFile is unavailable here; ReadNPY falls back to reading the file.
func mapFile(f *os.File, size int64) ([]byte, error) {
	return nil, errors.New("mmap not supported on this platform")
}
