//go:build cgo

package cudalib

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// cacheLib is where scripts/cuda-headers.sh puts NVRTC 11.8 and the stub
// libraries.
func cacheLib() string {
	c := os.Getenv("MCT_CUDA_CACHE")
	if c == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		c = filepath.Join(base, "mct", "cuda-11.8")
	}
	return filepath.Join(c, "usr/lib/x86_64-linux-gnu")
}

func loadNVRTC(t *testing.T) *NVRTC {
	t.Helper()
	n, err := LoadNVRTC(0, filepath.Join(cacheLib(), "libnvrtc.so.11.2"))
	if err != nil {
		t.Skipf("no NVRTC here (run scripts/cuda-headers.sh to get NVRTC 11.8): %v", err)
	}
	return n
}

// TestKernelsCompile compiles the real kernel source for the oldest and the
// newest architectures mct targets and checks every entry point is in the PTX.
func TestKernelsCompile(t *testing.T) {
	n := loadNVRTC(t)
	ma, mi := n.Version()
	t.Logf("NVRTC %d.%d from %s", ma, mi, n.Path())
	entry := regexp.MustCompile(`\.entry\s+(\w+)\s*\(`)
	for _, arch := range [][2]int{{7, 0}, {9, 0}} {
		ptx, log, err := n.Compile(Kernels, "kernels.cu", CompileOptions(arch[0], arch[1])...)
		if err != nil {
			t.Fatalf("%v: %v", arch, err)
		}
		if log != "" {
			t.Errorf("%v: compiler warnings:\n%s", arch, log)
		}
		got := map[string]bool{}
		for _, m := range entry.FindAllStringSubmatch(ptx, -1) {
			got[m[1]] = true
		}
		for _, k := range KernelNames {
			if !got[k] {
				t.Errorf("%v: kernel %s missing from PTX", arch, k)
			}
		}
		if len(got) != len(KernelNames) {
			t.Errorf("%v: PTX has %d entries, KernelNames lists %d", arch, len(got), len(KernelNames))
		}
	}
}

func TestCompileErrorCarriesLog(t *testing.T) {
	n := loadNVRTC(t)
	_, _, err := n.Compile(`extern "C" __global__ void k(float *x) { x[0] = undefined_name; }`, "bad.cu")
	if err == nil || !strings.Contains(err.Error(), "undefined_name") || !strings.Contains(err.Error(), "bad.cu") {
		t.Fatalf("error %v does not carry the compiler log", err)
	}
}

// TestCUBLASSymbols resolves every cuBLAS entry point mct uses against the
// stub library of the CUDA 11.8 toolkit.
func TestCUBLASSymbols(t *testing.T) {
	stub := filepath.Join(cacheLib(), "stubs/libcublas.so")
	if _, err := os.Stat(stub); err != nil {
		t.Skipf("no stub libcublas (run scripts/cuda-headers.sh): %v", err)
	}
	c, err := LoadCUBLAS(0, stub)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path() != stub {
		t.Fatalf("loaded %s, want %s", c.Path(), stub)
	}
}

func TestSonamesFollowDriver(t *testing.T) {
	cases := map[int]string{
		0:  "libnvrtc.so.13 libnvrtc.so.12 libnvrtc.so.11.2",
		13: "libnvrtc.so.13 libnvrtc.so.12 libnvrtc.so.11.2",
		12: "libnvrtc.so.12 libnvrtc.so.11.2",
		11: "libnvrtc.so.11.2",
	}
	for drv, want := range cases {
		if got := strings.Join(nvrtcLib.sonames(drv), " "); got != want {
			t.Errorf("driver %d: %s, want %s", drv, got, want)
		}
	}
}

func TestMissingLibraryError(t *testing.T) {
	l := library{stem: "libmct-absent", versions: []string{"1"}, resolve: func(h cuintptr) error { return nil }}
	_, err := l.open(l.sonames(0), []string{"/nonexistent"})
	if err == nil || !strings.Contains(err.Error(), "cannot load libmct-absent") || !strings.Contains(err.Error(), "CUDA_HOME") {
		t.Fatalf("error %v should name the library and the fix", err)
	}
}
