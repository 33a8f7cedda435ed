//go:build cgo && !openblas_dynamic

package blas

// Static link: the sgemm objects of Debian's libopenblas.a (pthread build) need only
// libpthread and libm, so the binary carries OpenBLAS and `ldd` lists only libc. The
// binary grows by ~25 MB (OpenBLAS ships kernels for every x86 generation and picks
// one at start-up). Where only a shared OpenBLAS exists, build with
// -tags openblas_dynamic.
//
// Picking the kernel: OpenBLAS 0.3.21 (Debian 12) does not know recent AVX-512 CPUs.
// It runs its AVX2 Haswell kernels on AMD Zen 4/5 and fell back to the SSE3 Prescott
// kernels on a Sapphire Rapids VM (5× slower GEMM). Its SkylakeX sgemm kernel needs
// only AVX-512 F/CD/BW/DQ/VL, which every such CPU has, and measured 1.46× Haswell's
// rate on a Zen 5 (bench/RESULTS-mct.md). OpenBLAS reads OPENBLAS_CORETYPE in its own
// library constructor, so a constructor that runs first (priority 101; OpenBLAS's has
// the default priority) sets it, unless the user already did. The shared-library build
// cannot do this: a library's constructors run before the program's.

/*
#cgo CFLAGS: -I/usr/include/x86_64-linux-gnu
#cgo LDFLAGS: -l:libopenblas.a -lpthread -lm
#include <stdlib.h>

static int mct_blas_chose_core;

__attribute__((constructor(101))) static void mct_blas_choose_core(void) {
#if defined(__x86_64__)
	if (getenv("OPENBLAS_CORETYPE") != NULL) {
		return;
	}
	__builtin_cpu_init();
	// __builtin_cpu_supports also checks that the OS saves the AVX-512 registers.
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
	    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vl")) {
		setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
		mct_blas_chose_core = 1;
	}
#endif
}

static int mct_blas_core_chosen(void) { return mct_blas_chose_core; }
*/
import "C"

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

// coreChosen reports whether mct chose OpenBLAS's kernel (OPENBLAS_CORETYPE was unset
// and the CPU has AVX-512); the variable stays set for child processes, so a PyTorch
// baseline started from mct or its tests runs the same OpenBLAS kernel.
func coreChosen() bool { return C.mct_blas_core_chosen() != 0 }

// Advice is a one-line hint when the user's OPENBLAS_CORETYPE holds OpenBLAS to
// older kernels than this CPU runs (mct would otherwise choose SkylakeX), else "".
func Advice() string {
	set := os.Getenv("OPENBLAS_CORETYPE")
	if coreChosen() || set == "" || !hasAVX512() {
		return ""
	}
	switch strings.ToLower(set) {
	case "skylakex", "cooperlake", "sapphirerapids":
		return ""
	}
	return fmt.Sprintf("OPENBLAS_CORETYPE=%s holds OpenBLAS to %s kernels on this AVX-512 CPU; unset it for SkylakeX's (1.46× the GEMM rate on a Zen 5, bench/RESULTS-mct.md)", set, core())
}

// hasAVX512 is the constructor's test, from Go.
func hasAVX512() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512CD && cpu.X86.HasAVX512BW &&
		cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL
}
