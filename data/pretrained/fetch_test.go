package pretrained

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsurePackageErrors(t *testing.T) {
	// No npm on PATH.
	t.Setenv("PATH", t.TempDir())
	cache := t.TempDir()
	if _, err := EnsurePackage(cache); err == nil || !strings.Contains(err.Error(), "npm is not installed") {
		t.Errorf("without npm: %v", err)
	}

	// An npm that fails as an offline one does, then one that hands back a
	// tarball with the wrong content: both are errors and leave nothing behind.
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	fake := func(script string) {
		if err := os.WriteFile(filepath.Join(bin, "npm"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fake("echo 'npm error code ENOTFOUND' >&2; exit 1\n")
	if _, err := EnsurePackage(cache); err == nil || !strings.Contains(err.Error(), "npm error code ENOTFOUND") {
		t.Errorf("offline npm: %v", err)
	}
	fake(`echo tampered > "$4/nsfwjs-4.4.0.tgz"` + "\n")
	if _, err := EnsurePackage(cache); err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Errorf("tampered tarball: %v", err)
	}
	if left, _ := os.ReadDir(cache); len(left) != 0 {
		t.Errorf("failed fetches left %v in the cache", left)
	}

	// A complete package already in the cache is used without npm.
	dir := filepath.Join(cache, "nsfwjs-4.4.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, completeMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fake("exit 1\n")
	if got, err := EnsurePackage(cache); err != nil || got != dir {
		t.Errorf("cached package: %q, %v", got, err)
	}
}

func TestExtractRejectsEscapes(t *testing.T) {
	for _, h := range []tar.Header{
		{Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		{Name: "/abs", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		{Name: "package/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
	} {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("x"))
		}
		tw.Close()
		zw.Close()
		dir := t.TempDir()
		if err := extractTarGz(buf.Bytes(), dir); err == nil {
			t.Errorf("entry %q (type %c) was accepted", h.Name, h.Typeflag)
		}
	}
}
