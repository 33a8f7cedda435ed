package cudalib

import (
	_ "embed"
	"strconv"
)

// Kernels is the CUDA C++ source of every mct kernel; compile it with
// NVRTC.Compile and load the PTX into a context.
//
//go:embed kernels.cu
var Kernels string

// KernelNames lists the kernels' entry points (extern "C" names).
var KernelNames = []string{
	"scale", "axpy", "mul", "copy_cols", "gather_rows", "fold_cols", "unfold_cols", "bias_lrelu", "lrelu_bwd",
	"col_sums", "bn_stats", "bn_bwd_stats", "bn_moments", "bn_normalize", "bn_backward",
	"dot_partial", "sum_partials", "partials_to_f32", "clip_scale", "clip_coef", "mean_of", "count_equal",
	"mean_others", "philox_test", "dropout_mask",
	"softmax_ce", "softmax", "argmax", "sample_gumbel", "adam", "to_bf16",
}

// CompileOptions are the NVRTC options for the kernels on a GPU of compute
// capability major.minor. --fmad=false keeps float arithmetic unfused, as in
// the CPU backend, so the two agree to rounding. The row-wise kernels' lambdas
// need C++11 or later, which not every NVRTC defaults to (Debian's 11.8 does
// not); C++17 is one every NVRTC from 11.0 to 13 accepts.
func CompileOptions(major, minor int) []string {
	return []string{
		"--gpu-architecture=compute_" + strconv.Itoa(major*10+minor),
		"--fmad=false",
		"-std=c++17",
	}
}
