//go:build cgo && !openblas_dynamic

package blas

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCoreChoice checks the start-up kernel choice of link_static.go: on an AVX-512
// CPU without a user's OPENBLAS_CORETYPE, OpenBLAS must run its SkylakeX kernels and
// Advice is silent; a user's OPENBLAS_CORETYPE is left alone, and Advice speaks when
// it names an older kernel. (The variable seen here is the one the process started
// with plus what the constructor set.)
func TestCoreChoice(t *testing.T) {
	set, got := os.Getenv("OPENBLAS_CORETYPE"), core()
	t.Logf("CPU AVX-512: %v, OPENBLAS_CORETYPE=%q, chosen by mct: %v, OpenBLAS core: %s, advice: %q",
		hasAVX512(), set, coreChosen(), got, Advice())
	switch {
	case coreChosen():
		if !hasAVX512() {
			t.Fatalf("mct chose SkylakeX on a CPU without AVX-512")
		}
		if got != "SkylakeX" {
			t.Fatalf("OPENBLAS_CORETYPE=SkylakeX was set before OpenBLAS started, but it runs %q: the constructor ran too late", got)
		}
		if Advice() != "" {
			t.Fatalf("advice %q although mct chose the kernel", Advice())
		}
	case set == "" && hasAVX512():
		t.Fatalf("AVX-512 CPU and no OPENBLAS_CORETYPE, yet mct did not choose the kernel (OpenBLAS runs %q)", got)
	case hasAVX512() && strings.EqualFold(set, "Haswell") && Advice() == "":
		t.Fatalf("OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU and no advice")
	}
	if !strings.Contains(Impl(), got) {
		t.Fatalf("Impl() = %q does not name the core %q", Impl(), got)
	}
	if hasAVX512() && os.Getenv("MCT_BLAS_CORE_CHILD") == "" {
		// The machine may set OPENBLAS_CORETYPE itself (this project's CI does): rerun
		// this test in children without it and with an old kernel, so both the
		// constructor's choice and the advice are checked wherever the CPU allows.
		for _, env := range []string{"", "OPENBLAS_CORETYPE=Haswell"} {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestCoreChoice$", "-test.v")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "OPENBLAS_CORETYPE=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, "MCT_BLAS_CORE_CHILD=1")
			if env != "" {
				cmd.Env = append(cmd.Env, env)
			}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestCoreChoice") {
				t.Fatalf("child with %q: %v\n%s", env, err, out)
			}
		}
	}
}
