// A CUDA execution model on the CPU, just large enough to run
// cudaops/cudalib/kernels.cu unchanged: every GPU thread of a block is a
// coroutine with its own stack; __syncthreads switches back to a
// scheduler that resumes each thread in turn, so all threads of a block meet
// at every barrier; blocks run one after another. Warp shuffles go through a
// block-wide buffer between two barriers, which is exact for kernels whose
// shuffles every thread of the block executes (all of ours). A thread that
// ends while others wait at a barrier is reported and aborts: on a GPU that
// is undefined behaviour.
//
// It runs the kernels' real text with the CPU's IEEE arithmetic (no FMA
// contraction, like --fmad=false), so tests on machines without a GPU check
// the kernels' indexing, reductions and arithmetic against the CPU backend.
// Unfused float arithmetic, as the kernels get with --fmad=false (cgo does
// not accept -ffp-contract=off as a flag).
#pragma GCC optimize("fp-contract=off")

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "emu.h"

namespace {

struct uint3 {
	unsigned x, y, z;
};
struct dim3 {
	unsigned x, y, z;
};

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

// Coroutines. On x86-64 a switch saves the callee-saved registers and swaps
// stacks (a few nanoseconds); elsewhere ucontext does it, with a system call
// per switch for the signal mask.
#if defined(__x86_64__)
extern "C" void kemu_switch(void **save_sp, void *load_sp);
asm(R"(
	.text
	.globl kemu_switch
	.type kemu_switch, @function
kemu_switch:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, (%rdi)
	movq %rsi, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.size kemu_switch, .-kemu_switch
)");

struct Context {
	void *sp;
};
Context scheduler;

void start_thread();

// prepare makes c start in start_thread on the stack [lo, lo+size): the
// first switch to it pops six zero registers and "returns" into
// start_thread with the stack aligned as after a call.
void prepare(Context *c, char *lo, size_t size) {
	uintptr_t top = ((uintptr_t)(lo + size)) & ~(uintptr_t)15;
	void **sp = (void **)top;
	*--sp = nullptr;                      // start_thread's return address: never used
	*--sp = (void *)start_thread;         // popped by ret
	for (int i = 0; i < 6; i++) *--sp = nullptr;  // rbp rbx r12 r13 r14 r15
	c->sp = sp;
}
void switch_to(Context *from, Context *to) { kemu_switch(&from->sp, to->sp); }
#else
struct Context {
	ucontext_t uc;
};
Context scheduler;

void start_thread();

void prepare(Context *c, char *lo, size_t size) {
	getcontext(&c->uc);
	c->uc.uc_stack.ss_sp = lo;
	c->uc.uc_stack.ss_size = size;
	c->uc.uc_link = nullptr;
	makecontext(&c->uc, start_thread, 0);
}
void switch_to(Context *from, Context *to) { swapcontext(&from->uc, &to->uc); }
#endif

struct Thread {
	Context ctx;
	bool done;
	unsigned x, y;
};

const size_t kStack = 64 * 1024;
std::vector<Thread> threads;
std::vector<char> stacks;
int current;
std::function<void()> body;

// start_thread runs the kernel body for the current thread, then hands back
// to the scheduler for good.
void start_thread() {
	body();
	threads[current].done = true;
	switch_to(&threads[current].ctx, &scheduler);
	abort();  // a finished thread is never resumed
}

void __syncthreads() { switch_to(&threads[current].ctx, &scheduler); }

void run_block() {
	int n = blockDim.x * blockDim.y;
	threads.resize(n);
	if (stacks.size() < n * kStack) stacks.resize(n * kStack);
	for (int i = 0; i < n; i++) {
		Thread &t = threads[i];
		prepare(&t.ctx, &stacks[i * kStack], kStack);
		t.done = false;
		t.x = i % blockDim.x;
		t.y = i / blockDim.x;
	}
	for (;;) {
		int done = 0;
		for (int i = 0; i < n; i++) {
			if (threads[i].done) continue;
			current = i;
			threadIdx = uint3{threads[i].x, threads[i].y, 0};
			switch_to(&scheduler, &threads[i].ctx);
		}
		for (int i = 0; i < n; i++) done += threads[i].done;
		if (done == n) return;
		if (done != 0) {
			fprintf(stderr, "kemu: block %u: %d threads ended while %d wait at __syncthreads\n", blockIdx.x, done,
			        n - done);
			abort();
		}
	}
}

void launch(unsigned gx, unsigned bx, unsigned by, std::function<void()> f) {
	body = f;
	gridDim = dim3{gx, 1, 1};
	blockDim = dim3{bx, by, 1};
	for (unsigned b = 0; b < gx; b++) {
		blockIdx = uint3{b, 0, 0};
		run_block();
	}
}

// Device built-ins used by the kernels.
template <class T>
T shuffle(T v, int from_lane_of) {
	static T buf[1024];
	int lin = threadIdx.y * blockDim.x + threadIdx.x;
	buf[lin] = v;
	__syncthreads();
	T r = buf[from_lane_of];
	__syncthreads();
	return r;
}

template <class T>
T __shfl_down_sync(unsigned, T v, int delta) {
	int lin = threadIdx.y * blockDim.x + threadIdx.x, lane = lin % 32;
	return shuffle(v, lane + delta < 32 ? lin + delta : lin);
}

template <class T>
T __shfl_sync(unsigned, T v, int src) {
	int lin = threadIdx.y * blockDim.x + threadIdx.x;
	return shuffle(v, lin - lin % 32 + src);
}

unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
unsigned __float_as_uint(float f) {
	unsigned u;
	memcpy(&u, &f, 4);
	return u;
}
float __uint_as_float(unsigned u) {
	float f;
	memcpy(&f, &u, 4);
	return f;
}
double __longlong_as_double(long long i) {
	double d;
	memcpy(&d, &i, 8);
	return d;
}
using std::exp;
using std::fmax;
using std::log;
using std::sqrt;
float sqrtf(float x) { return std::sqrt(x); }

#define KERNEL static
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)

#include "../cudalib/kernels.cu"

}  // namespace

#define WRAP(name, params, args)                                                  \
	extern "C" void emu_##name params { launch(gx, bx, by, [=] { name args; }); }

WRAP(scale, (unsigned gx, unsigned bx, unsigned by, float *x, float a, long long n), (x, a, n))
WRAP(axpy, (unsigned gx, unsigned bx, unsigned by, float *y, float a, const float *x, long long n), (y, a, x, n))
WRAP(mul, (unsigned gx, unsigned bx, unsigned by, float *x, const float *y, long long n), (x, y, n))
WRAP(copy_cols,
     (unsigned gx, unsigned bx, unsigned by, float *dst, int ldd, int d0, const float *src, int lds, int s0, int rows,
      int cols, float beta),
     (dst, ldd, d0, src, lds, s0, rows, cols, beta))
WRAP(gather_rows,
     (unsigned gx, unsigned bx, unsigned by, float *dst, const float *src, int cols, const unsigned *idx,
      long long src_rows),
     (dst, src, cols, idx, src_rows))
WRAP(fold_cols, (unsigned gx, unsigned bx, unsigned by, float *dst, int dc, const float *src, int sc, int rows, int off),
     (dst, dc, src, sc, rows, off))
WRAP(unfold_cols,
     (unsigned gx, unsigned bx, unsigned by, float *dst, int dc, const float *src, int sc, int rows, int off,
      float beta),
     (dst, dc, src, sc, rows, off, beta))
WRAP(bias_lrelu, (unsigned gx, unsigned bx, unsigned by, float *x, const float *bias, int rows, int cols, float slope),
     (x, bias, rows, cols, slope))
WRAP(lrelu_bwd,
     (unsigned gx, unsigned bx, unsigned by, float *dx, const float *dy, const float *y, float slope, long long n),
     (dx, dy, y, slope, n))
WRAP(col_sums, (unsigned gx, unsigned bx, unsigned by, float *dst, const float *x, int rows, int cols, float beta),
     (dst, x, rows, cols, beta))
WRAP(bn_stats,
     (unsigned gx, unsigned bx, unsigned by, float *stats, const float *x, const float *run_mean, int rows, int cols),
     (stats, x, run_mean, rows, cols))
WRAP(bn_bwd_stats,
     (unsigned gx, unsigned bx, unsigned by, float *stats, float *dgamma, float *dbeta, const float *dy,
      const float *x, const float *mean, const float *var, int rows, int cols, float eps, float beta),
     (stats, dgamma, dbeta, dy, x, mean, var, rows, cols, eps, beta))
WRAP(bn_moments,
     (unsigned gx, unsigned bx, unsigned by, float *mean, float *var, float *run_mean, float *run_var,
      const float *stats, int cols, float momentum),
     (mean, var, run_mean, run_var, stats, cols, momentum))
WRAP(bn_normalize,
     (unsigned gx, unsigned bx, unsigned by, float *y, int ldy, const float *x, const float *mean, const float *var,
      const float *gamma, const float *beta, int rows, int cols, float eps),
     (y, ldy, x, mean, var, gamma, beta, rows, cols, eps))
WRAP(bn_backward,
     (unsigned gx, unsigned bx, unsigned by, float *dx, const float *dy, const float *x, const float *mean,
      const float *var, const float *gamma, const float *stats, int rows, int cols, float eps, float slope),
     (dx, dy, x, mean, var, gamma, stats, rows, cols, eps, slope))
WRAP(dot_partial, (unsigned gx, unsigned bx, unsigned by, double *part, const float *x, const float *y, long long n),
     (part, x, y, n))
WRAP(sum_partials, (unsigned gx, unsigned bx, unsigned by, double *out, const double *part, int n), (out, part, n))
WRAP(partials_to_f32, (unsigned gx, unsigned bx, unsigned by, float *out, const double *part, int n),
     (out, part, n))
WRAP(clip_scale,
     (unsigned gx, unsigned bx, unsigned by, float *x, long long n, const double *part, int np, float max_norm,
      float *norm),
     (x, n, part, np, max_norm, norm))
WRAP(clip_coef,
     (unsigned gx, unsigned bx, unsigned by, float *out, const double *part, int np, float max_norm, float *norm),
     (out, part, np, max_norm, norm))
WRAP(mean_of, (unsigned gx, unsigned bx, unsigned by, float *dst, const float *x, int n), (dst, x, n))
WRAP(count_equal, (unsigned gx, unsigned bx, unsigned by, float *dst, const float *a, const float *b, int cols),
     (dst, a, b, cols))
WRAP(mean_others,
     (unsigned gx, unsigned bx, unsigned by, float *dst, const float *src, int views, float a, long long n),
     (dst, src, views, a, n))
WRAP(philox_test, (unsigned gx, unsigned bx, unsigned by, unsigned *out, unsigned k0, unsigned k1, int n),
     (out, k0, k1, n))
WRAP(dropout_mask,
     (unsigned gx, unsigned bx, unsigned by, float *mask, int rows, int cols, float p, unsigned long long seed,
      unsigned step, unsigned stream, unsigned row_base, const unsigned *step_at),
     (mask, rows, cols, p, seed, step, stream, row_base, step_at))
WRAP(softmax_ce,
     (unsigned gx, unsigned bx, unsigned by, float *loss, float *dx, const float *x, const float *labels, int cols,
      float invT, float scale, float beta, const float *scale_at),
     (loss, dx, x, labels, cols, invT, scale, beta, scale_at))
WRAP(softmax, (unsigned gx, unsigned bx, unsigned by, float *y, const float *x, int cols, float invT), (y, x, cols, invT))
WRAP(argmax, (unsigned gx, unsigned bx, unsigned by, float *dst, const float *x, int cols), (dst, x, cols))
WRAP(sample_gumbel,
     (unsigned gx, unsigned bx, unsigned by, float *dst, const float *x, const unsigned *index, int cols, float invT,
      unsigned long long seed, unsigned step, unsigned stream, const unsigned *step_at),
     (dst, x, index, cols, invT, seed, step, stream, step_at))
WRAP(adam,
     (unsigned gx, unsigned bx, unsigned by, float *w, const float *g, float *m, float *v, long long n,
      float step_size, float beta1, float beta2, float eps, float wd, float bc2_sqrt, float one_minus_beta1,
      float one_minus_beta2, const float *sched, const float *gscale),
     (w, g, m, v, n, step_size, beta1, beta2, eps, wd, bc2_sqrt, one_minus_beta1, one_minus_beta2, sched, gscale))
WRAP(to_bf16, (unsigned gx, unsigned bx, unsigned by, unsigned short *dst, const float *src, long long n),
     (dst, src, n))
