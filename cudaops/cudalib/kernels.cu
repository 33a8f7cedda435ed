// mct kernels, compiled at run time by NVRTC (no headers: NVRTC provides the
// built-ins). All matrices are row-major fp32. Reductions accumulate in
// double, as the CPU backend does, so results agree to float rounding.
//
// Launch conventions (cudaops/launch.go relies on them):
//   elementwise kernels: 1-D grid-stride loops, any grid;
//   row kernels (one row per block): grid.x = rows, block = 256 threads;
//   column reductions: block (32, 32), grid.x = ceil(cols/32).

#define WARP 32

__device__ __forceinline__ double warp_sum(double v) {
	for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ float warp_max(float v) {
	for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
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

__device__ float block_max(float v) {
	__shared__ float part[WARP];
	int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0) part[w] = v;
	__syncthreads();
	int nw = blockDim.x / WARP;
	v = lane < nw ? part[lane] : -__int_as_float(0x7f800000);
	return __shfl_sync(0xffffffffu, warp_max(v), 0);
}

#define GRID_STRIDE(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

extern "C" __global__ void fill(float *x, float v, long long n) {
	GRID_STRIDE(i, n) x[i] = v;
}

// scale: x = a·x.
extern "C" __global__ void scale(float *x, float a, long long n) {
	GRID_STRIDE(i, n) x[i] *= a;
}

// axpby: y = a·x + b·y (b = 0 overwrites y, even NaN).
extern "C" __global__ void axpby(float *y, const float *x, float a, float b, long long n) {
	if (b == 0.0f) {
		GRID_STRIDE(i, n) y[i] = a * x[i];
	} else {
		GRID_STRIDE(i, n) y[i] = a * x[i] + b * y[i];
	}
}

// copy_cols: dst[r, d0+c] (+)= src[r, s0+c] for r < rows, c < cols; the
// dense-skip concatenations and their gradients.
extern "C" __global__ void copy_cols(float *dst, int ldd, int d0, const float *src, int lds, int s0,
                                     int rows, int cols, int accumulate) {
	long long n = (long long)rows * cols;
	GRID_STRIDE(i, n) {
		int r = i / cols, c = i % cols;
		float v = src[(long long)r * lds + s0 + c];
		float *d = &dst[(long long)r * ldd + d0 + c];
		*d = accumulate ? *d + v : v;
	}
}

__device__ __forceinline__ float lrelu(float x, float slope) { return x > 0.0f ? x : slope * x; }

// bias_lrelu: y[r,c] = lrelu(x[r,c] + bias[c]) (bias may be null); y may be x.
extern "C" __global__ void bias_lrelu(float *y, const float *x, const float *bias, int rows, int cols, float slope) {
	long long n = (long long)rows * cols;
	GRID_STRIDE(i, n) {
		float v = x[i] + (bias ? bias[i % cols] : 0.0f);
		y[i] = lrelu(v, slope);
	}
}

// bias_add: y[r,c] = x[r,c] + bias[c]; y may be x.
extern "C" __global__ void bias_add(float *y, const float *x, const float *bias, int rows, int cols) {
	long long n = (long long)rows * cols;
	GRID_STRIDE(i, n) y[i] = x[i] + bias[i % cols];
}

// lrelu_bwd: dx = dy where pre > 0, else slope·dy; pre is the pre-activation
// (or the activation: same sign for slope > 0). dx may be dy.
extern "C" __global__ void lrelu_bwd(float *dx, const float *dy, const float *pre, float slope, long long n) {
	GRID_STRIDE(i, n) dx[i] = pre[i] > 0.0f ? dy[i] : slope * dy[i];
}

// Column reductions over rows. Block (32, 32): threadIdx.x picks the column
// in a tile of 32, threadIdx.y strides over rows; the 32 partial sums of a
// column are added in shared memory in a fixed order, so results are
// deterministic.
template <int MODE>
__device__ void col_reduce(const float *x, const float *y, int rows, int cols, double *o1, double *o2) {
	__shared__ double s1[32][33], s2[32][33];
	int c = blockIdx.x * 32 + threadIdx.x;
	double a = 0.0, b = 0.0;
	if (c < cols) {
		for (int r = threadIdx.y; r < rows; r += 32) {
			double v = x[(long long)r * cols + c];
			if (MODE == 0) {            // Σx
				a += v;
			} else if (MODE == 1) {     // Σx, Σx²
				a += v;
				b += v * v;
			} else {                    // Σx, Σx·y
				a += v;
				b += v * (double)y[(long long)r * cols + c];
			}
		}
	}
	s1[threadIdx.y][threadIdx.x] = a;
	s2[threadIdx.y][threadIdx.x] = b;
	__syncthreads();
	if (threadIdx.y == 0 && c < cols) {
		for (int k = 1; k < 32; k++) {
			a += s1[k][threadIdx.x];
			b += s2[k][threadIdx.x];
		}
		*o1 = a;
		if (MODE != 0) *o2 = b;
	}
}

// col_sum: out[c] = beta·out[c] + Σ_r x[r,c] (bias gradients: beta = 1 accumulates).
extern "C" __global__ void col_sum(float *out, const float *x, int rows, int cols, float beta) {
	double a;
	col_reduce<0>(x, 0, rows, cols, &a, 0);
	int c = blockIdx.x * 32 + threadIdx.x;
	if (threadIdx.y == 0 && c < cols) out[c] = (beta == 0.0f ? 0.0f : beta * out[c]) + (float)a;
}

// col_stats: s1[c] = Σ_r x[r,c], s2[c] = Σ_r x[r,c]² (BatchNorm forward sums).
extern "C" __global__ void col_stats(float *s1, float *s2, const float *x, int rows, int cols) {
	double a, b;
	col_reduce<1>(x, 0, rows, cols, &a, &b);
	int c = blockIdx.x * 32 + threadIdx.x;
	if (threadIdx.y == 0 && c < cols) {
		s1[c] = (float)a;
		s2[c] = (float)b;
	}
}

// col_dot_stats: s1[c] = Σ_r dy[r,c], s2[c] = Σ_r dy[r,c]·xhat[r,c] (BatchNorm backward sums).
extern "C" __global__ void col_dot_stats(float *s1, float *s2, const float *dy, const float *xhat, int rows, int cols) {
	double a, b;
	col_reduce<2>(dy, xhat, rows, cols, &a, &b);
	int c = blockIdx.x * 32 + threadIdx.x;
	if (threadIdx.y == 0 && c < cols) {
		s1[c] = (float)a;
		s2[c] = (float)b;
	}
}

// sumsq_partial: part[blockIdx.x] = Σ x[i]² over the block's grid-stride
// share; a fixed grid makes the total deterministic. block 256.
extern "C" __global__ void sumsq_partial(double *part, const float *x, long long n) {
	double a = 0.0;
	GRID_STRIDE(i, n) {
		double v = x[i];
		a += v * v;
	}
	a = block_sum(a);
	if (threadIdx.x == 0) part[blockIdx.x] = a;
}

// sum_partials: out[0] (+)= Σ part[i] in one block of 256 threads.
extern "C" __global__ void sum_partials(double *out, const double *part, int n, int accumulate) {
	double a = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) a += part[i];
	a = block_sum(a);
	if (threadIdx.x == 0) out[0] = accumulate ? out[0] + a : a;
}

// adam: torch.optim.Adam (L2 weight decay added to the gradient, not AdamW).
// bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. The update follows PyTorch's
// single-tensor path: denom = sqrt(v)/sqrt(bc2) + eps; p -= lr/bc1 · m/denom.
extern "C" __global__ void adam(float *p, const float *g, float *m, float *v, float lr, float beta1,
                                float beta2, float eps, float wd, float bc1, float bc2, long long n) {
	float step = lr / bc1;
	float sbc2 = sqrtf(bc2);
	GRID_STRIDE(i, n) {
		float gi = g[i];
		if (wd != 0.0f) gi += wd * p[i];
		float mi = m[i] + (1.0f - beta1) * (gi - m[i]);   // lerp, as torch does
		float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		p[i] -= step * mi / (sqrtf(vi) / sbc2 + eps);
	}
}

// Float bits of bf16 rounding (round to nearest even), for tests and the
// bf16 benchmark's inputs.
extern "C" __global__ void to_bf16(unsigned short *dst, const float *src, long long n) {
	GRID_STRIDE(i, n) {
		unsigned int u = __float_as_uint(src[i]);
		u += 0x7fffu + ((u >> 16) & 1u);
		dst[i] = (unsigned short)(u >> 16);
	}
}
