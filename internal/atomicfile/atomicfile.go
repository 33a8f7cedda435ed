// Package atomicfile writes files that readers see whole or not at all: run outputs,
// checkpoints, dataset files. The bytes go to a temporary file in the same directory
// (rename is atomic only within one file system), which is flushed to disk before it
// replaces the path, and the directory is synced so that the new name survives a crash.
package atomicfile

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempMarker is part of every temporary file's name. A crash between create and rename
// leaves such a file behind; IsTemp recognises it so owners can clean up.
const TempMarker = ".tmp-"

// IsTemp reports whether name is a temporary file left by Write.
func IsTemp(name string) bool { return strings.Contains(name, TempMarker) }

// Write makes path hold exactly what write produces, or leaves it as it was. The file
// is readable by everyone (0644): outputs are for colleagues and tools too.
func Write(path string, write func(w *bufio.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+TempMarker+"*")
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
	return SyncDir(dir)
}

// WriteFile is Write of the concatenation of parts.
func WriteFile(path string, parts ...[]byte) error {
	return Write(path, func(w *bufio.Writer) error {
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// SyncDir makes the directory entries of dir (a rename, a new or removed file)
// durable; without it a power loss can undo a rename that returned.
func SyncDir(dir string) error {
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
