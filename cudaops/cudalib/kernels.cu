// mct kernels, compiled at run time by NVRTC (no headers: NVRTC provides the
// built-ins). All matrices are row-major fp32. Reductions accumulate in
// double, as the CPU backend does, so results agree to float rounding.
//
// The semantics of each kernel are those of the nn.Backend method of the same
// name (nn/backend.go); comments here only say how the work is laid out.
//
// Launch conventions (cudaops relies on them):
//   elementwise kernels: 1-D grid-stride loops, any grid, any block;
//   row-wise kernels (COLUMN_SETUP: copy_cols, fold_cols, unfold_cols,
//     bias_lrelu, bn_normalize, bn_backward): block 256, grid.x a multiple of
//     ceil(cols/256), the column tiles, at least one of them;
//   row kernels (one row per block): grid.x = rows, block = 256 threads;
//   column reductions: block (COL_TILE, COL_ROWS) = (8, 128), grid.x =
//     ceil(cols/COL_TILE) (declared with
//     __launch_bounds__(1024) so that they never need more registers than
//     a 1024-thread block can have);
//   partial sums: block 256, grid.x = NPART, then one block of 256
//     (sum_partials, partials_to_f32), or clip_scale on an elementwise grid;
//   single-block reductions (mean_of, clip_coef): grid 1, block 256.
// Compile with --fmad=false: the CPU backend does not fuse multiply-adds, and
// unfused float arithmetic keeps the two within rounding of each other.

#define WARP 32

// KERNEL marks an entry point. cudaops/kemu, which runs this file on the CPU
// for tests, defines it to give the kernels internal linkage.
#ifndef KERNEL
#define KERNEL extern "C" __global__
#endif

__device__ __forceinline__ double warp_sum(double v) {
	for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ double warp_max(double v) {
	for (int o = WARP / 2; o > 0; o >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
	return v;
}

// block_sum returns the sum over the block in every thread. blockDim.x is a
// multiple of 32 and at most 1024.
__device__ double block_sum(double v) {
	__shared__ double part[WARP];
	int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
	v = warp_sum(v);
	__syncthreads(); // part may still be read by a previous call
	if (lane == 0) part[w] = v;
	__syncthreads();
	int nw = blockDim.x / WARP;
	v = lane < nw ? part[lane] : 0.0;
	return __shfl_sync(0xffffffffu, warp_sum(v), 0);
}

__device__ double block_max(double v) {
	__shared__ double part[WARP];
	int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0) part[w] = v;
	__syncthreads();
	int nw = blockDim.x / WARP;
	v = lane < nw ? part[lane] : -__longlong_as_double(0x7ff0000000000000ll);
	return __shfl_sync(0xffffffffu, warp_max(v), 0);
}

#define GRID_STRIDE(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// Row-wise kernels over a rows×cols matrix: a thread owns one column c of the
// blocks that share its column tile and walks down their rows, so what depends on
// the column alone (BatchNorm's factors, a bias, where a column is read from) is
// computed once per thread, not per element, and no element index is divided.
// The grid is ceil(cols/blockDim.x) column tiles times any number of row chunks;
// consecutive threads take consecutive columns of a row, so accesses coalesce.
#define COLUMN_SETUP(cols)                                                       \
	int tiles_ = ((cols) + blockDim.x - 1) / blockDim.x;                             \
	int c = (blockIdx.x % tiles_) * blockDim.x + threadIdx.x;                        \
	int r0_ = blockIdx.x / tiles_, rstep_ = gridDim.x / tiles_;                      \
	if (c >= (cols)) return;

// each_row calls put(r, get(r)) for the thread's rows r0, r0+step, … < rows,
// with the gets of 4 rows before their puts: 4 loads in flight per thread.
// Written as one loop, a load could not pass the store before it (the kernels
// also run in place, so the compiler must assume they alias: checked in the PTX).
template <class Get, class Put>
__device__ __forceinline__ void each_row(int r, int step, int rows, Get get, Put put) {
	for (; r + 3 * step < rows; r += 4 * step) {
		auto v0 = get(r), v1 = get(r + step), v2 = get(r + 2 * step), v3 = get(r + 3 * step);
		put(r, v0);
		put(r + step, v1);
		put(r + 2 * step, v2);
		put(r + 3 * step, v3);
	}
	for (; r < rows; r += step) put(r, get(r));
}

// Two floats read together by a row-wise kernel's get.
struct f2 {
	float a, b;
};

KERNEL void scale(float *x, float a, long long n) {
	GRID_STRIDE(i, n) x[i] *= a;
}

KERNEL void axpy(float *y, float a, const float *x, long long n) {
	GRID_STRIDE(i, n) y[i] += a * x[i];
}

KERNEL void mul(float *x, const float *y, long long n) {
	GRID_STRIDE(i, n) x[i] *= y[i];
}

// copy_cols: dst[r, d0+c] = beta·dst[r, d0+c] + src[r, s0+c]; beta = 0 does
// not read dst. Row-wise.
KERNEL void copy_cols(float *dst, int ldd, int d0, const float *src, int lds, int s0,
                                     int rows, int cols, float beta) {
	COLUMN_SETUP(cols)
	each_row(r0_, rstep_, rows,
	    [&](int r) {
		    return f2{src[(long long)r * lds + s0 + c], beta == 0.0f ? 0.0f : dst[(long long)r * ldd + d0 + c]};
	    },
	    [&](int r, f2 v) { dst[(long long)r * ldd + d0 + c] = beta == 0.0f ? v.a : beta * v.b + v.a; });
}

// gather_rows: one block per row i of dst: dst[i, c] = src[idx[i], c] for c < cols,
// the index read as the bits of an unsigned (nn.IndexBits, never converted from
// float); an index at or past src_rows gives a row of NaN. The block's threads
// stride over the row, so reads and writes are coalesced and nothing is divided.
KERNEL void gather_rows(float *dst, const float *src, int cols, const unsigned *idx, long long src_rows) {
	unsigned k = idx[blockIdx.x];
	float *d = dst + (long long)blockIdx.x * cols;
	if (k < src_rows) {
		const float *s = src + (long long)k * cols;
		for (int c = threadIdx.x; c < cols; c += blockDim.x) d[c] = s[c];
	} else {
		for (int c = threadIdx.x; c < cols; c += blockDim.x) d[c] = __uint_as_float(0x7fc00000u);
	}
}

// fold_cols: dst (rows×dc) = src (rows×sc) with its trailing w = sc−dc columns
// added onto columns [off, off+w): one add, as copy_cols' copy-then-accumulate.
// Row-wise.
KERNEL void fold_cols(float *dst, int dc, const float *src, int sc, int rows, int off) {
	COLUMN_SETUP(dc)
	bool folded = c >= off && c < off + (sc - dc);
	each_row(r0_, rstep_, rows,
	    [&](int r) {
		    const float *sr = src + (long long)r * sc;
		    return f2{sr[c], folded ? sr[dc + c - off] : 0.0f};
	    },
	    [&](int r, f2 v) { dst[(long long)r * dc + c] = folded ? v.a + v.b : v.a; });
}

// unfold_cols: dst (rows×dc) = beta·dst + src (rows×sc) with columns c ≥ sc read
// from src column off+c−sc; beta = 0 does not read dst. Row-wise.
KERNEL void unfold_cols(float *dst, int dc, const float *src, int sc, int rows, int off, float beta) {
	COLUMN_SETUP(dc)
	int from = c < sc ? c : off + c - sc;
	each_row(r0_, rstep_, rows,
	    [&](int r) {
		    return f2{src[(long long)r * sc + from], beta == 0.0f ? 0.0f : dst[(long long)r * dc + c]};
	    },
	    [&](int r, f2 v) { dst[(long long)r * dc + c] = beta == 0.0f ? v.a : beta * v.b + v.a; });
}

// bias_lrelu: x[r,c] = f(x[r,c] + bias[c]); bias may be null. Row-wise.
KERNEL void bias_lrelu(float *x, const float *bias, int rows, int cols, float slope) {
	COLUMN_SETUP(cols)
	float b = bias ? bias[c] : 0.0f;
	each_row(r0_, rstep_, rows, [&](int r) { return x[(long long)r * cols + c]; },
	    [&](int r, float v) {
		    if (bias) v = v + b;
		    x[(long long)r * cols + c] = v > 0.0f ? v : slope * v;
	    });
}

// lrelu_bwd: dx[i] = dy[i]·(y[i] > 0 ? 1 : slope); dx may be dy.
KERNEL void lrelu_bwd(float *dx, const float *dy, const float *y, float slope, long long n) {
	GRID_STRIDE(i, n) {
		float d = dy[i];
		dx[i] = y[i] <= 0.0f ? d * slope : d;
	}
}

// Column reductions over rows. Block (COL_TILE, COL_ROWS): threadIdx.x picks
// the column in a tile of COL_TILE, threadIdx.y strides over rows; the COL_ROWS
// partial sums of a column are then added by a tree of fixed shape, so results
// are deterministic. A tile is 8 columns, one 32-byte memory sector per row: a
// warp reads 4 rows' sectors whole, and a 1024-wide matrix spreads over 128
// blocks, about one per SM of an H100, where tiles of 32 columns kept 32 SMs
// busy and the rest idle (NVRTC unrolls the row loop by 4, so each thread has 4
// loads in flight either way).
//   MODE 0: a = Σ x
//   MODE 1: a = Σ (x−s), b = Σ (x−s)²                  (s = shift[c])
//   MODE 2: a = Σ dy, b = Σ dy·x̂, x̂ = (x−mean)·istd   (x = second input)
#define COL_TILE 8
#define COL_ROWS 128
template <int MODE>
__device__ void col_reduce(const float *x, const float *x2, const float *shift, const float *var, float eps,
                           int rows, int cols, double *oa, double *ob) {
	__shared__ double sa[COL_ROWS][COL_TILE], sb[COL_ROWS][COL_TILE];
	int c = blockIdx.x * COL_TILE + threadIdx.x;
	double a = 0.0, b = 0.0;
	if (c < cols) {
		double s = MODE != 0 ? (double)shift[c] : 0.0;
		double istd = MODE == 2 ? 1.0 / sqrt((double)var[c] + (double)eps) : 0.0;
		for (int r = threadIdx.y; r < rows; r += COL_ROWS) {
			long long i = (long long)r * cols + c;
			if (MODE == 0) {
				a += (double)x[i];
			} else if (MODE == 1) {
				double d = (double)x[i] - s;
				a += d;
				b += d * d;
			} else {
				double dy = x[i];
				a += dy;
				b += dy * (((double)x2[i] - s) * istd);
			}
		}
	}
	sa[threadIdx.y][threadIdx.x] = a;
	sb[threadIdx.y][threadIdx.x] = b;
	for (int h = COL_ROWS / 2; h > 0; h >>= 1) {
		__syncthreads();
		if (threadIdx.y < h) {
			sa[threadIdx.y][threadIdx.x] += sa[threadIdx.y + h][threadIdx.x];
			sb[threadIdx.y][threadIdx.x] += sb[threadIdx.y + h][threadIdx.x];
		}
	}
	__syncthreads();
	*oa = sa[0][threadIdx.x];
	*ob = sb[0][threadIdx.x];
}

// col_sums: dst[c] = beta·dst[c] + Σ_r x[r,c]; beta = 0 does not read dst.
KERNEL void __launch_bounds__(1024) col_sums(float *dst, const float *x, int rows, int cols, float beta) {
	double a, b;
	col_reduce<0>(x, 0, 0, 0, 0.0f, rows, cols, &a, &b);
	int c = blockIdx.x * COL_TILE + threadIdx.x;
	if (threadIdx.y == 0 && c < cols) dst[c] = beta == 0.0f ? (float)a : (float)((double)beta * dst[c] + a);
}

// bn_stats: stats = [Σ(x−s), Σ(x−s)², rows], s = runMean.
KERNEL void __launch_bounds__(1024) bn_stats(float *stats, const float *x, const float *run_mean, int rows, int cols) {
	double a, b;
	col_reduce<1>(x, 0, run_mean, 0, 0.0f, rows, cols, &a, &b);
	int c = blockIdx.x * COL_TILE + threadIdx.x;
	if (threadIdx.y == 0 && c < cols) {
		stats[c] = (float)a;
		stats[cols + c] = (float)b;
	}
	if (blockIdx.x == 0 && threadIdx.x == 0 && threadIdx.y == 0) stats[2 * cols] = (float)rows;
}

// bn_bwd_stats: stats = [Σdy, Σdy·x̂, rows]; dbeta = beta·dbeta + Σdy and
// dgamma = beta·dgamma + Σdy·x̂ as floats, where not null (beta = 0 does not read them).
KERNEL void __launch_bounds__(1024) bn_bwd_stats(float *stats, float *dgamma, float *dbeta, const float *dy,
                                        const float *x, const float *mean, const float *var, int rows, int cols,
                                        float eps, float beta) {
	double a, b;
	col_reduce<2>(dy, x, mean, var, eps, rows, cols, &a, &b);
	int c = blockIdx.x * COL_TILE + threadIdx.x;
	if (threadIdx.y == 0 && c < cols) {
		float fa = (float)a, fb = (float)b;
		stats[c] = fa;
		stats[cols + c] = fb;
		if (dbeta) dbeta[c] = beta == 0.0f ? fa : beta * dbeta[c] + fa;
		if (dgamma) dgamma[c] = beta == 0.0f ? fb : beta * dgamma[c] + fb;
	}
	if (blockIdx.x == 0 && threadIdx.x == 0 && threadIdx.y == 0) stats[2 * cols] = (float)rows;
}

// bn_moments: one thread per column, in double.
KERNEL void bn_moments(float *mean, float *var, float *run_mean, float *run_var,
                                      const float *stats, int cols, float momentum) {
	double n = stats[2 * cols], m = momentum;
	GRID_STRIDE(c, cols) {
		double s1 = stats[c] / n;
		double mu = (double)run_mean[c] + s1;
		double v = (double)stats[cols + c] / n - s1 * s1;
		if (v < 0.0) v = 0.0;
		double unbiased = n > 1.0 ? v * n / (n - 1.0) : v;
		mean[c] = (float)mu;
		var[c] = (float)v;
		run_mean[c] = (float)((1.0 - m) * (double)run_mean[c] + m * mu);
		run_var[c] = (float)((1.0 - m) * (double)run_var[c] + m * unbiased);
	}
}

// bn_normalize: row-wise, the column's factor computed once; y's rows ldy apart.
KERNEL void bn_normalize(float *y, int ldy, const float *x, const float *mean, const float *var,
                                        const float *gamma, const float *beta, int rows, int cols, float eps) {
	COLUMN_SETUP(cols)
	// (x−μ) first, then one per-column factor rounded to float, as the CPU does.
	float k = (float)((double)gamma[c] / sqrt((double)var[c] + (double)eps));
	float mu = mean[c], b = beta[c];
	each_row(r0_, rstep_, rows, [&](int r) { return x[(long long)r * cols + c]; },
	    [&](int r, float v) { y[(long long)r * ldy + c] = (v - mu) * k + b; });
}

KERNEL void bn_backward(float *dx, const float *dy, const float *x, const float *mean,
                                       const float *var, const float *gamma, const float *stats,
                                       int rows, int cols, float eps, float slope) {
	COLUMN_SETUP(cols)
	// dx = k·dy − c0 − c1·(x−μ) with per-column constants rounded to float, the
	// CPU's order; row-wise, so they are computed once.
	double rn = stats[2 * cols];
	double inv = 1.0 / sqrt((double)var[c] + (double)eps);
	double kk = (double)gamma[c] * inv;
	float k = (float)kk, c0 = (float)(kk * (double)stats[c] / rn);
	float c1 = (float)(kk * inv * (double)stats[cols + c] / rn);
	float mu = mean[c];
	each_row(r0_, rstep_, rows, [&](int r) { return f2{dy[(long long)r * cols + c], x[(long long)r * cols + c]}; },
	    [&](int r, f2 g) {
		    float v = k * g.a - c0 - c1 * (g.b - mu);
		    // Then the LeakyReLU(slope) whose output is x, as lrelu_bwd.
		    if (g.b <= 0.0f) v *= slope;
		    dx[(long long)r * cols + c] = v;
	    });
}

// dot_partial: part[blockIdx.x] = Σ x[i]·y[i] over the block's grid-stride
// share; block 256, a fixed grid of NPART blocks makes the total deterministic.
KERNEL void dot_partial(double *part, const float *x, const float *y, long long n) {
	double a = 0.0;
	GRID_STRIDE(i, n) a += (double)x[i] * (double)y[i];
	a = block_sum(a);
	if (threadIdx.x == 0) part[blockIdx.x] = a;
}

// sum_partials: out[0] = Σ part[0:n], one block of 256.
KERNEL void sum_partials(double *out, const double *part, int n) {
	double a = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) a += part[i];
	a = block_sum(a);
	if (threadIdx.x == 0) out[0] = a;
}

// partials_to_f32: out[0] = (float)Σ part[0:n], one block of 256 (DotTo).
KERNEL void partials_to_f32(float *out, const double *part, int n) {
	double a = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) a += part[i];
	a = block_sum(a);
	if (threadIdx.x == 0) out[0] = (float)a;
}

// clip_factor returns clip_grad_norm_'s coef = max_norm/(‖x‖+1e-6) from the np
// partial sums of dot_partial(part, x, x, n), totalled in the same order as
// sum_partials (so every block, and Dot, get the same norm), and writes (float)‖x‖
// to norm unless it is null.
__device__ double clip_factor(const double *part, int np, float max_norm, float *norm) {
	double a = 0.0;
	for (int i = threadIdx.x; i < np; i += blockDim.x) a += part[i];
	double nrm = sqrt(block_sum(a));
	if (norm && blockIdx.x == 0 && threadIdx.x == 0) *norm = (float)nrm;
	return (double)max_norm / (nrm + 1e-6);
}

// clip_scale: the second pass of ClipNorm after dot_partial(part, x, x, n). Every
// block totals the partial sums itself instead of waiting for a third kernel; then
// x *= (float)coef when coef < 1.
KERNEL void clip_scale(float *x, long long n, const double *part, int np, float max_norm, float *norm) {
	double coef = clip_factor(part, np, max_norm, norm);
	if (coef < 1.0) {
		float c = (float)coef;
		GRID_STRIDE(i, n) x[i] *= c;
	}
}

// clip_coef: the second pass of ClipCoef after dot_partial(part, x, x, n), one block
// of 256: out[0] = (float)coef when coef < 1, else 1.
KERNEL void clip_coef(float *out, const double *part, int np, float max_norm, float *norm) {
	double coef = clip_factor(part, np, max_norm, norm);
	if (threadIdx.x == 0) out[0] = coef < 1.0 ? (float)coef : 1.0f;
}

// mean_of: dst[0] = (float)(Σ x[0:n] / n), one block of 256.
KERNEL void mean_of(float *dst, const float *x, int n) {
	double a = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) a += (double)x[i];
	a = block_sum(a);
	if (threadIdx.x == 0) dst[0] = (float)(a / (double)n);
}

// count_equal: one block per row r of a: dst[r] = #{c : a[r,c] == b[c]}.
KERNEL void count_equal(float *dst, const float *a, const float *b, int cols) {
	const float *ar = a + (long long)blockIdx.x * cols;
	double k = 0.0;
	for (int c = threadIdx.x; c < cols; c += blockDim.x) k += ar[c] == b[c] ? 1.0 : 0.0;
	k = block_sum(k);
	if (threadIdx.x == 0) dst[blockIdx.x] = (float)k;
}

// mean_others: dst[w·n+i] = Σ_{o≠w} a·src[o·n+i] from 0.0f in increasing o, the
// order of the Fill and Axpy calls it replaces (a = 1/(views−1), rounded by the host).
KERNEL void mean_others(float *dst, const float *src, int views, float a, long long n) {
	GRID_STRIDE(i, n) {
		for (int w = 0; w < views; w++) {
			float acc = 0.0f;
			for (int o = 0; o < views; o++)
				if (o != w) acc += a * src[o * n + i];
			dst[w * n + i] = acc;
		}
	}
}

// Philox4x32-10 and the uniform of nn/rng.go, bit for bit.
__device__ __forceinline__ unsigned int philox_x0(unsigned int c0, unsigned int c1, unsigned int c2, unsigned int c3,
                                                  unsigned int k0, unsigned int k1) {
	for (int i = 0; i < 10; i++) {
		if (i > 0) {
			k0 += 0x9E3779B9u;
			k1 += 0xBB67AE85u;
		}
		unsigned int hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
		unsigned int hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
		unsigned int n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
		c0 = n0;
		c1 = lo1;
		c2 = n2;
		c3 = lo0;
	}
	return c0;
}

__device__ __forceinline__ float uniform(unsigned long long seed, unsigned int step, unsigned int stream,
                                         unsigned int index, unsigned int column) {
	unsigned int x = philox_x0(column, index, step, stream, (unsigned int)seed, (unsigned int)(seed >> 32));
	return ((float)(x >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

// philox_test writes Philox4x32-10's first word for counters (i, i+1, i+2,
// i+3) under key (k0, k1), for the test against nn.Philox4x32.
KERNEL void philox_test(unsigned int *out, unsigned int k0, unsigned int k1, int n) {
	GRID_STRIDE(i, n) out[i] = philox_x0(i, i + 1, i + 2, i + 3, k0, k1);
}

// Per-update values may come from device memory (step_at, scale_at, sched: nn.Backend's
// optional operands), so that a recorded CUDA graph replays with the arguments it was
// captured with; a null pointer means the argument is used.

KERNEL void dropout_mask(float *mask, int rows, int cols, float p, unsigned long long seed,
                                        unsigned int step, unsigned int stream, unsigned int row_base,
                                        const unsigned int *step_at) {
	if (step_at) step = *step_at;
	long long n = (long long)rows * cols;
	float keep = 1.0f / (1.0f - p);
	GRID_STRIDE(i, n) {
		unsigned int r = i / cols, c = i % cols;
		mask[i] = uniform(seed, step, stream, row_base + r, c) < p ? 0.0f : keep;
	}
}

// Row kernels: one block of 256 threads per row.

// row_lse returns log Σ_c exp(invT·x[c]) for one row, in double, in every
// thread of the block.
__device__ double row_lse(const float *xr, int cols, double invT) {
	double mx = -__longlong_as_double(0x7ff0000000000000ll);
	for (int c = threadIdx.x; c < cols; c += blockDim.x) mx = fmax(mx, invT * (double)xr[c]);
	mx = block_max(mx);
	double s = 0.0;
	for (int c = threadIdx.x; c < cols; c += blockDim.x) s += exp(invT * (double)xr[c] - mx);
	return mx + log(block_sum(s));
}

// softmax_ce: z = invT·x; loss[r] = lse − z[label]; dx = scale·(softmax(z) −
// onehot) + beta·dx, all in double as the CPU does.
KERNEL void softmax_ce(float *loss, float *dx, const float *x, const float *labels,
                                      int cols, float invT, float scale, float beta, const float *scale_at) {
	if (scale_at) scale = *scale_at;
	const float *xr = x + (long long)blockIdx.x * cols;
	double it = invT;
	double lse = row_lse(xr, cols, it);
	float lv = labels[blockIdx.x];
	int label = (int)lv;
	// A label that is not a class index (the CPU backend panics) poisons the
	// row with NaN instead of reading outside it.
	bool bad = !(lv >= 0.0f && lv < (float)cols && (float)label == lv);
	double nan = __longlong_as_double(0x7ff8000000000000ll);
	if (loss && threadIdx.x == 0) loss[blockIdx.x] = bad ? (float)nan : (float)(lse - it * (double)xr[label]);
	if (dx) {
		float *dr = dx + (long long)blockIdx.x * cols;
		for (int c = threadIdx.x; c < cols; c += blockDim.x) {
			double g = bad ? nan : exp(it * (double)xr[c] - lse);
			if (c == label) g -= 1.0;
			g *= (double)scale;
			if (beta != 0.0f) g += (double)beta * (double)dr[c];
			dr[c] = (float)g;
		}
	}
}

// softmax: y = softmax(invT·x); each thread reads only the elements it
// writes after the row reductions, so y may be x.
KERNEL void softmax(float *y, const float *x, int cols, float invT) {
	const float *xr = x + (long long)blockIdx.x * cols;
	float *yr = y + (long long)blockIdx.x * cols;
	double it = invT;
	double lse = row_lse(xr, cols, it);
	for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = (float)exp(it * (double)xr[c] - lse);
}

// warp_argmax leaves in lane 0 the (v, i) pair of the warp with the largest v,
// the smallest i among equal ones.
__device__ __forceinline__ void warp_argmax(double &v, int &i) {
	for (int o = WARP / 2; o > 0; o >>= 1) {
		double ov = __shfl_down_sync(0xffffffffu, v, o);
		int oi = __shfl_down_sync(0xffffffffu, i, o);
		if (ov > v || (ov == v && oi < i)) {
			v = ov;
			i = oi;
		}
	}
}

// block_argmax returns, in every thread, the smallest index holding the
// largest value among (v, i) pairs of the block.
__device__ int block_argmax(double v, int i) {
	__shared__ double pv[WARP];
	__shared__ int pi[WARP];
	warp_argmax(v, i);
	int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
	__syncthreads();
	if (lane == 0) {
		pv[w] = v;
		pi[w] = i;
	}
	__syncthreads();
	int nw = blockDim.x / WARP;
	v = lane < nw ? pv[lane] : -__longlong_as_double(0x7ff0000000000000ll);
	i = lane < nw ? pi[lane] : 0x7fffffff;
	warp_argmax(v, i);
	return __shfl_sync(0xffffffffu, i, 0);
}

KERNEL void argmax(float *dst, const float *x, int cols) {
	const float *xr = x + (long long)blockIdx.x * cols;
	double best = -__longlong_as_double(0x7ff0000000000000ll);
	int bi = 0x7fffffff;
	for (int c = threadIdx.x; c < cols; c += blockDim.x) {
		if ((double)xr[c] > best) {
			best = xr[c];
			bi = c;
		}
	}
	int i = block_argmax(best, bi);
	if (threadIdx.x == 0) dst[blockIdx.x] = (float)(i == 0x7fffffff ? 0 : i);
}

// sample_gumbel: dst[r] = argmax_c (invT·x[r,c] + Gumbel(key, index[r], c)) in double;
// index holds uint32s in float32 slots (nn.IndexBits), read here by their bits.
KERNEL void sample_gumbel(float *dst, const float *x, const unsigned int *index, int cols,
                                         float invT, unsigned long long seed, unsigned int step,
                                         unsigned int stream, const unsigned int *step_at) {
	if (step_at) step = *step_at;
	const float *xr = x + (long long)blockIdx.x * cols;
	unsigned int row = index[blockIdx.x];
	double best = -__longlong_as_double(0x7ff0000000000000ll);
	int bi = 0x7fffffff;
	for (int c = threadIdx.x; c < cols; c += blockDim.x) {
		double u = uniform(seed, step, stream, row, c);
		double v = (double)invT * (double)xr[c] - log(-log(u));
		if (v > best) {
			best = v;
			bi = c;
		}
	}
	int i = block_argmax(best, bi);
	if (threadIdx.x == 0) dst[blockIdx.x] = (float)(i == 0x7fffffff ? 0 : i);
}

// adam: torch.optim.Adam, PyTorch 1.13 single-tensor semantics (nn.AdamHyper).
// gscale, unless null, scales the gradient as it is read (ClipCoef's factor; g·1 is g).
KERNEL void adam(float *w, const float *g, float *m, float *v, long long n, float step_size,
                                float beta1, float beta2, float eps, float wd, float bc2_sqrt,
                                float one_minus_beta1, float one_minus_beta2, const float *sched,
                                const float *gscale) {
	if (sched) {
		step_size = sched[0];
		bc2_sqrt = sched[1];
	}
	float k = gscale ? gscale[0] : 1.0f;
	GRID_STRIDE(i, n) {
		float gi = g[i] * k;
		if (wd != 0.0f) gi = gi + wd * w[i];
		float mi = beta1 * m[i] + one_minus_beta1 * gi;
		float vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
		m[i] = mi;
		v[i] = vi;
		w[i] -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
	}
}

// to_bf16 rounds to bfloat16 (nearest even) for the bf16 GEMM benchmark.
KERNEL void to_bf16(unsigned short *dst, const float *src, long long n) {
	GRID_STRIDE(i, n) {
		unsigned int u = __float_as_uint(src[i]);
		u += 0x7fffu + ((u >> 16) & 1u);
		dst[i] = (unsigned short)(u >> 16);
	}
}
