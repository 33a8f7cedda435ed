package cudalib

import _ "embed"

// Kernels is the CUDA C++ source of every mct kernel; compile it with
// NVRTC.Compile and load the PTX into a context.
//
//go:embed kernels.cu
var Kernels string

// KernelNames lists the kernels' entry points (extern "C" names).
var KernelNames = []string{
	"fill", "scale", "axpby", "copy_cols", "bias_lrelu", "bias_add", "lrelu_bwd",
	"col_sum", "col_stats", "col_dot_stats", "sumsq_partial", "sum_partials",
	"adam", "to_bf16",
}
