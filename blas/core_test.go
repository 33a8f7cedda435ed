//go:build cgo && !openblas_dynamic

package blas

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestCoreChoice checks the start-up kernel choice of link_static.go: on an AVX-512
// CPU without a user's OPENBLAS_CORETYPE, OpenBLAS must run its SkylakeX kernels; a
// user's OPENBLAS_CORETYPE is left alone. (The variable seen here is the one the
// process started with plus what the constructor set.)
func TestCoreChoice(t *testing.T) {
	avx512 := cpu.X86.HasAVX512F && cpu.X86.HasAVX512CD && cpu.X86.HasAVX512BW &&
		cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL
	got := core()
	t.Logf("CPU AVX-512: %v, OPENBLAS_CORETYPE=%q, chosen by mct: %v, OpenBLAS core: %s",
		avx512, os.Getenv("OPENBLAS_CORETYPE"), coreChosen(), got)
	switch {
	case coreChosen():
		if !avx512 {
			t.Fatalf("mct chose SkylakeX on a CPU without AVX-512")
		}
		if got != "SkylakeX" {
			t.Fatalf("OPENBLAS_CORETYPE=SkylakeX was set before OpenBLAS started, but it runs %q: the constructor ran too late", got)
		}
	case os.Getenv("OPENBLAS_CORETYPE") == "" && avx512:
		t.Fatalf("AVX-512 CPU and no OPENBLAS_CORETYPE, yet mct did not choose the kernel (OpenBLAS runs %q)", got)
	case os.Getenv("OPENBLAS_CORETYPE") != "":
		if !strings.EqualFold(got, os.Getenv("OPENBLAS_CORETYPE")) {
			t.Logf("note: OpenBLAS runs %q for OPENBLAS_CORETYPE=%q (it maps unknown names)", got, os.Getenv("OPENBLAS_CORETYPE"))
		}
	}
	if avx512 && os.Getenv("MCT_BLAS_CORE_CHILD") == "" {
		// The machine may set OPENBLAS_CORETYPE itself (this project's CI does): rerun
		// this test in a child without it, so the constructor's choice is checked too.
		cmd := exec.Command(os.Args[0], "-test.run", "^TestCoreChoice$", "-test.v")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "OPENBLAS_CORETYPE=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "MCT_BLAS_CORE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "chosen by mct: true, OpenBLAS core: SkylakeX") {
			t.Fatalf("without OPENBLAS_CORETYPE: %v\n%s", err, out)
		}
	}
	if !strings.Contains(Impl(), got) {
		t.Fatalf("Impl() = %q does not name the core %q", Impl(), got)
	}
}
