//go:build cgo

package cudalib

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mct/internal/testenv"
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
		testenv.Missing(t, "no NVRTC here (run scripts/cuda-headers.sh to get NVRTC 11.8): %v", err)
	}
	return n
}

// TestKernelsCompile compiles the real kernel source for the oldest
// architecture mct targets (TestKernelResources does sm_90) and checks every
// entry point is in the PTX.
func TestKernelsCompile(t *testing.T) {
	n := loadNVRTC(t)
	ma, mi := n.Version()
	t.Logf("NVRTC %d.%d from %s", ma, mi, n.Path())
	entry := regexp.MustCompile(`\.entry\s+(\w+)\s*\(`)
	for _, arch := range [][2]int{{7, 0}} {
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
		testenv.Missing(t, "no stub libcublas (run scripts/cuda-headers.sh): %v", err)
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

// TestKernelResources assembles the kernels for sm_90 (NVRTC runs ptxas when
// asked for an sm_ target) and checks each fits the block size cudaops
// launches it with: registers·threads within the 64K register file, static
// shared memory within 48 KB, no spills.
func TestKernelResources(t *testing.T) {
	n := loadNVRTC(t)
	// cudaops' options, but for sm_90 itself, so that ptxas runs and reports.
	opts := []string{"--gpu-architecture=sm_90", "--ptxas-options=-v"}
	for _, o := range CompileOptions(9, 0) {
		if !strings.HasPrefix(o, "--gpu-architecture=") {
			opts = append(opts, o)
		}
	}
	_, log, err := n.Compile(Kernels, "kernels.cu", opts...)
	if err != nil {
		t.Fatal(err)
	}
	threads := map[string]int{"col_sums": 1024, "bn_stats": 1024, "bn_bwd_stats": 1024}
	entry := regexp.MustCompile(`Compiling entry function '(\w+)'`)
	used := regexp.MustCompile(`Used (\d+) registers(?:, (\d+) bytes smem)?`)
	spill := regexp.MustCompile(`(\d+) bytes spill stores, (\d+) bytes spill loads`)
	seen := 0
	var name string
	for _, line := range strings.Split(log, "\n") {
		if m := entry.FindStringSubmatch(line); m != nil {
			name = m[1]
			continue
		}
		if m := spill.FindStringSubmatch(line); m != nil && (m[1] != "0" || m[2] != "0") {
			t.Errorf("%s spills registers: %s", name, strings.TrimSpace(line))
		}
		if m := used.FindStringSubmatch(line); m != nil {
			seen++
			regs, _ := strconv.Atoi(m[1])
			smem, _ := strconv.Atoi("0" + m[2])
			th := threads[name]
			if th == 0 {
				th = 256
			}
			if regs*th > 65536 || smem > 48<<10 {
				t.Errorf("%s: %d registers × %d threads, %d bytes shared: does not fit a block", name, regs, th, smem)
			}
		}
	}
	if seen != len(KernelNames) {
		t.Fatalf("ptxas reported %d kernels, want %d; log:\n%s", seen, len(KernelNames), log)
	}
}
