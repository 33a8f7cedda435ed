// C entry points of the kernel emulator: one per kernel of
// cudaops/cudalib/kernels.cu, taking the launch shape (grid.x, block.x,
// block.y) and then the kernel's own parameters.
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
void emu_scale(unsigned gx, unsigned bx, unsigned by, float *x, float a, long long n);
void emu_axpy(unsigned gx, unsigned bx, unsigned by, float *y, float a, const float *x, long long n);
void emu_mul(unsigned gx, unsigned bx, unsigned by, float *x, const float *y, long long n);
void emu_copy_cols(unsigned gx, unsigned bx, unsigned by, float *dst, int ldd, int d0, const float *src, int lds,
                   int s0, int rows, int cols, float beta);
void emu_gather_rows(unsigned gx, unsigned bx, unsigned by, float *dst, const float *src, int cols, const unsigned *idx,
                     long long src_rows);
void emu_fold_cols(unsigned gx, unsigned bx, unsigned by, float *dst, int dc, const float *src, int sc, int rows,
                   int off);
void emu_unfold_cols(unsigned gx, unsigned bx, unsigned by, float *dst, int dc, const float *src, int sc, int rows,
                     int off, float beta);
void emu_bias_lrelu(unsigned gx, unsigned bx, unsigned by, float *x, const float *bias, int rows, int cols, float slope);
void emu_lrelu_bwd(unsigned gx, unsigned bx, unsigned by, float *dx, const float *dy, const float *y, float slope,
                   long long n);
void emu_col_sums(unsigned gx, unsigned bx, unsigned by, float *dst, const float *x, int rows, int cols, float beta);
void emu_bn_stats(unsigned gx, unsigned bx, unsigned by, float *stats, const float *x, const float *run_mean, int rows,
                  int cols);
void emu_bn_bwd_stats(unsigned gx, unsigned bx, unsigned by, float *stats, float *dgamma, float *dbeta,
                      const float *dy, const float *x, const float *mean, const float *var, int rows, int cols,
                      float eps, float beta);
void emu_bn_moments(unsigned gx, unsigned bx, unsigned by, float *mean, float *var, float *run_mean, float *run_var,
                    const float *stats, int cols, float momentum);
void emu_bn_normalize(unsigned gx, unsigned bx, unsigned by, float *y, int ldy, const float *x, const float *mean,
                      const float *var, const float *gamma, const float *beta, int rows, int cols, float eps);
void emu_bn_backward(unsigned gx, unsigned bx, unsigned by, float *dx, const float *dy, const float *x,
                     const float *mean, const float *var, const float *gamma, const float *stats, int rows, int cols,
                     float eps, float slope);
void emu_dot_partial(unsigned gx, unsigned bx, unsigned by, double *part, const float *x, const float *y, long long n);
void emu_sum_partials(unsigned gx, unsigned bx, unsigned by, double *out, const double *part, int n);
void emu_partials_to_f32(unsigned gx, unsigned bx, unsigned by, float *out, const double *part, int n);
void emu_clip_scale(unsigned gx, unsigned bx, unsigned by, float *x, long long n, const double *part, int np,
                    float max_norm, float *norm);
void emu_clip_coef(unsigned gx, unsigned bx, unsigned by, float *out, const double *part, int np, float max_norm,
                   float *norm);
void emu_mean_of(unsigned gx, unsigned bx, unsigned by, float *dst, const float *x, int n);
void emu_count_equal(unsigned gx, unsigned bx, unsigned by, float *dst, const float *a, const float *b, int cols);
void emu_mean_others(unsigned gx, unsigned bx, unsigned by, float *dst, const float *src, int views, float a,
                     long long n);
void emu_philox_test(unsigned gx, unsigned bx, unsigned by, unsigned *out, unsigned k0, unsigned k1, int n);
void emu_dropout_mask(unsigned gx, unsigned bx, unsigned by, float *mask, int rows, int cols, float p,
                      unsigned long long seed, unsigned step, unsigned stream, unsigned row_base,
                      const unsigned *step_at);
void emu_softmax_ce(unsigned gx, unsigned bx, unsigned by, float *loss, float *dx, const float *x,
                    const float *labels, int cols, float invT, float scale, float beta, const float *scale_at);
void emu_softmax(unsigned gx, unsigned bx, unsigned by, float *y, const float *x, int cols, float invT);
void emu_argmax(unsigned gx, unsigned bx, unsigned by, float *dst, const float *x, int cols);
void emu_sample_gumbel(unsigned gx, unsigned bx, unsigned by, float *dst, const float *x, const unsigned *index,
                       int cols, float invT, unsigned long long seed, unsigned step, unsigned stream,
                       const unsigned *step_at);
void emu_adam(unsigned gx, unsigned bx, unsigned by, float *w, const float *g, float *m, float *v, long long n,
              float step_size, float beta1, float beta2, float eps, float wd, float bc2_sqrt,
              float one_minus_beta1, float one_minus_beta2, const float *sched, const float *gscale);
void emu_to_bf16(unsigned gx, unsigned bx, unsigned by, unsigned short *dst, const float *src, long long n);
#ifdef __cplusplus
}
#endif
