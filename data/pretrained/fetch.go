package pretrained

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	// Package and Version name the npm package the networks come from (MIT).
	Package = "nsfwjs"
	Version = "4.4.0"
	// integrity is the registry's SRI hash of nsfwjs-4.4.0.tgz (as `npm pack`
	// prints it); a tarball that does not match is rejected.
	integrity = "sha512-krC1fgeTLXtZwgdpKJ0jm7hqv0gTSRQQRL+FhOaxaJ9Wj92t42BO3csO2odwgTAgZgf2RvkwPtp0R8Aa7dc+MA=="
	// completeMarker is written inside the extracted tree before it is renamed
	// into place, so a directory holding it is known to be whole.
	completeMarker = ".mct-complete"
	// maxTarball bounds what extraction will write (the tarball is 25 MB, its
	// contents about 70 MB).
	maxTarball = 512 << 20
)

// Network describes one of the networks nsfwjs ships.
type Network struct {
	Name string // "mobilenet_v2" or "inception_v3", as used in view specs
	Dir  string // directory under dist/models in the package
}

// Networks are the pretrained networks available, by name.
var Networks = map[string]Network{
	"mobilenet_v2": {Name: "mobilenet_v2", Dir: "mobilenet_v2"},
	"inception_v3": {Name: "inception_v3", Dir: "inception_v3"},
}

// EnsurePackage returns the directory of the extracted nsfwjs@4.4.0 package
// under cacheDir, fetching it with `npm pack` on first use. The tarball's
// integrity is checked against the registry hash pinned here, it is extracted
// into a temporary directory and renamed into place, so an interrupted fetch
// never leaves a half-written package behind. Nothing is fetched when the
// package is already there.
func EnsurePackage(cacheDir string) (string, error) {
	dir := filepath.Join(cacheDir, Package+"-"+Version)
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err == nil {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("fetch %s@%s: npm is not installed (install Node.js and npm, e.g. `apt-get install npm`, or copy an extracted package to %s)", Package, Version, dir)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("fetch %s@%s: %w", Package, Version, err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".fetch-"+Package+"-*")
	if err != nil {
		return "", fmt.Errorf("fetch %s@%s: %w", Package, Version, err)
	}
	defer os.RemoveAll(tmp)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "pack", Package+"@"+Version, "--pack-destination", tmp)
	cmd.Dir = tmp
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("fetch %s@%s: `npm pack` failed (is the npm registry reachable? set npm's registry/proxy or pre-fill %s): %v: %s",
			Package, Version, dir, err, lastLine(stderr.String()))
	}
	tgz := filepath.Join(tmp, Package+"-"+Version+".tgz")
	data, err := os.ReadFile(tgz)
	if err != nil {
		return "", fmt.Errorf("fetch %s@%s: npm pack did not produce %s: %w", Package, Version, filepath.Base(tgz), err)
	}
	sum := sha512.Sum512(data)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != integrity {
		return "", fmt.Errorf("fetch %s@%s: tarball integrity %s does not match the pinned %s", Package, Version, got, integrity)
	}
	root := filepath.Join(tmp, "x")
	if err := extractTarGz(data, root); err != nil {
		return "", fmt.Errorf("fetch %s@%s: extract %s: %w", Package, Version, filepath.Base(tgz), err)
	}
	pkg := filepath.Join(root, "package") // npm tarballs hold one top folder
	if err := os.WriteFile(filepath.Join(pkg, completeMarker), []byte(integrity+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("fetch %s@%s: %w", Package, Version, err)
	}
	if err := os.Rename(pkg, dir); err != nil {
		// Another process may have finished the same fetch first.
		if _, serr := os.Stat(filepath.Join(dir, completeMarker)); serr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("fetch %s@%s: move into %s: %w (remove the directory if it is left over from an old fetch)", Package, Version, dir, err)
	}
	return dir, nil
}

// lastLine condenses npm's stderr into one line: its "npm error" lines, less
// the pointer to the debug log, or else the last line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var errs []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if (strings.HasPrefix(l, "npm error") || strings.HasPrefix(l, "npm ERR!")) && !strings.Contains(l, "complete log") {
			errs = append(errs, l)
		}
	}
	if len(errs) == 0 {
		return strings.TrimSpace(lines[len(lines)-1])
	}
	msg := strings.Join(errs, "; ")
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	return msg
}

// extractTarGz writes the regular files and directories of a gzipped tar into
// dir, refusing any entry that would land outside it.
func extractTarGz(data []byte, dir string) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	written := int64(0)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("entry %q points outside the package", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			written += h.Size
			if written > maxTarball {
				return fmt.Errorf("contents exceed %d bytes", maxTarball)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, h.Size))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q has type %q; only files and directories are expected", h.Name, h.Typeflag)
		}
	}
}

// Load returns the named network ("mobilenet_v2" or "inception_v3") from the
// nsfwjs package in cacheDir, fetching the package on first use.
func Load(cacheDir, network string) (*Model, error) {
	nw, ok := Networks[network]
	if !ok {
		return nil, fmt.Errorf("unknown pretrained network %q: want mobilenet_v2 or inception_v3", network)
	}
	dir, err := EnsurePackage(cacheDir)
	if err != nil {
		return nil, err
	}
	return ReadModel(filepath.Join(dir, "dist", "models", nw.Dir))
}
