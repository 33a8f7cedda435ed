package ckpt

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tmpMarker is part of every temporary file's name. A crash between create
// and rename leaves such a file behind; nothing in this package ever reads
// one, and Commit removes those of the step it commits.
const tmpMarker = ".tmp-"

// writeAtomic makes path hold exactly what write produces, or leaves it as it
// was: the bytes go to a temporary file in the same directory (rename is only
// atomic within one file system), which is flushed to disk before it replaces
// path, and the directory is synced so the new name itself survives a crash.
func writeAtomic(path string, write func(w *bufio.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+tmpMarker+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// CreateTemp makes files private (0600); checkpoints and exports are
	// ordinary outputs that colleagues and tools must be able to read.
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes the directory entries of dir (a rename, a new or removed
// file) durable; without it a power loss can undo a rename that returned.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// isTemp reports whether name is a temporary file left by writeAtomic.
func isTemp(name string) bool { return strings.Contains(name, tmpMarker) }

// countingWriter passes bytes on and counts them, so a file's layout can be
// recorded while it is streamed.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
