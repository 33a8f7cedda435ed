// Run-time loading of NVRTC and cuBLAS. The function types are declared here
// from the libraries' documented C ABI so that no CUDA header is needed and one
// binary serves CUDA 11 to 13.
#include <stddef.h>
#include <stdint.h>

// dl_open loads a library with RTLD_NOW|RTLD_GLOBAL (so that libraries it
// dlopens later by soname find it already loaded); 0 on failure, with the
// reason in err.
uintptr_t dl_open(const char *path, char *err, size_t errlen);

// nvrtc_load resolves the NVRTC entry points from a handle; 0 on success,
// otherwise err names the missing symbol.
int nvrtc_load(uintptr_t h, char *err, size_t errlen);
int nvrtc_version(int *major, int *minor);
// nvrtc_compile compiles src to PTX. On return *ptx and *log are malloc'd
// (either may be NULL); the result is an nvrtcResult.
int nvrtc_compile(const char *src, const char *name, int nopt, const char **opts,
                  char **ptx, size_t *ptxlen, char **log);
const char *nvrtc_error(int code);

int cublas_load(uintptr_t h, char *err, size_t errlen);
int cublas_create(uintptr_t *handle);
int cublas_destroy(uintptr_t handle);
int cublas_version(uintptr_t handle, int *version);
int cublas_set_stream(uintptr_t handle, uintptr_t stream);
int cublas_set_workspace(uintptr_t handle, uintptr_t ptr, size_t bytes);
int cublas_gemm(uintptr_t handle, int ta, int tb, int m, int n, int k, float alpha,
                uintptr_t a, int atype, int lda, uintptr_t b, int btype, int ldb,
                float beta, uintptr_t c, int ctype, int ldc, int compute, int algo);
