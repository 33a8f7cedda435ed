#include "dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uintptr_t dl_open(const char *path, char *err, size_t errlen) {
	void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!h) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
	}
	return (uintptr_t)h;
}

#define RESOLVE(h, var, name)                                          \
	do {                                                               \
		*(void **)(&var) = dlsym((void *)(h), name);                   \
		if (!var) {                                                    \
			snprintf(err, errlen, "symbol %s not found", name);        \
			return 1;                                                  \
		}                                                              \
	} while (0)

/* NVRTC: nvrtcProgram is an opaque pointer, nvrtcResult an int. */
static int (*p_nvrtcVersion)(int *, int *);
static int (*p_nvrtcCreateProgram)(void **, const char *, const char *, int, const char *const *, const char *const *);
static int (*p_nvrtcCompileProgram)(void *, int, const char *const *);
static int (*p_nvrtcGetPTXSize)(void *, size_t *);
static int (*p_nvrtcGetPTX)(void *, char *);
static int (*p_nvrtcGetProgramLogSize)(void *, size_t *);
static int (*p_nvrtcGetProgramLog)(void *, char *);
static int (*p_nvrtcDestroyProgram)(void **);
static const char *(*p_nvrtcGetErrorString)(int);

int nvrtc_load(uintptr_t h, char *err, size_t errlen) {
	RESOLVE(h, p_nvrtcVersion, "nvrtcVersion");
	RESOLVE(h, p_nvrtcCreateProgram, "nvrtcCreateProgram");
	RESOLVE(h, p_nvrtcCompileProgram, "nvrtcCompileProgram");
	RESOLVE(h, p_nvrtcGetPTXSize, "nvrtcGetPTXSize");
	RESOLVE(h, p_nvrtcGetPTX, "nvrtcGetPTX");
	RESOLVE(h, p_nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize");
	RESOLVE(h, p_nvrtcGetProgramLog, "nvrtcGetProgramLog");
	RESOLVE(h, p_nvrtcDestroyProgram, "nvrtcDestroyProgram");
	RESOLVE(h, p_nvrtcGetErrorString, "nvrtcGetErrorString");
	return 0;
}

int nvrtc_version(int *major, int *minor) { return p_nvrtcVersion(major, minor); }

const char *nvrtc_error(int code) { return p_nvrtcGetErrorString(code); }

int nvrtc_compile(const char *src, const char *name, int nopt, const char **opts,
                  char **ptx, size_t *ptxlen, char **log) {
	void *prog = NULL;
	*ptx = NULL;
	*ptxlen = 0;
	*log = NULL;
	int rc = p_nvrtcCreateProgram(&prog, src, name, 0, NULL, NULL);
	if (rc != 0) return rc;
	int crc = p_nvrtcCompileProgram(prog, nopt, opts);
	size_t n = 0;
	if (p_nvrtcGetProgramLogSize(prog, &n) == 0 && n > 1) {
		*log = malloc(n);
		if (*log && p_nvrtcGetProgramLog(prog, *log) != 0) {
			free(*log);
			*log = NULL;
		}
	}
	if (crc == 0) {
		if ((rc = p_nvrtcGetPTXSize(prog, &n)) == 0) {
			*ptx = malloc(n);
			if ((rc = p_nvrtcGetPTX(prog, *ptx)) == 0) {
				*ptxlen = n;
			}
		}
	} else {
		rc = crc;
	}
	p_nvrtcDestroyProgram(&prog);
	return rc;
}

/* cuBLAS: cublasHandle_t and cudaStream_t are opaque pointers, enums ints. */
static int (*p_cublasCreate)(void **);
static int (*p_cublasDestroy)(void *);
static int (*p_cublasGetVersion)(void *, int *);
static int (*p_cublasSetStream)(void *, void *);
static int (*p_cublasSetWorkspace)(void *, void *, size_t);
static int (*p_cublasGemmEx)(void *, int, int, int, int, int, const void *, const void *, int, int,
                             const void *, int, int, const void *, void *, int, int, int, int);

int cublas_load(uintptr_t h, char *err, size_t errlen) {
	RESOLVE(h, p_cublasCreate, "cublasCreate_v2");
	RESOLVE(h, p_cublasDestroy, "cublasDestroy_v2");
	RESOLVE(h, p_cublasGetVersion, "cublasGetVersion_v2");
	RESOLVE(h, p_cublasSetStream, "cublasSetStream_v2");
	RESOLVE(h, p_cublasSetWorkspace, "cublasSetWorkspace_v2");
	RESOLVE(h, p_cublasGemmEx, "cublasGemmEx");
	return 0;
}

int cublas_create(uintptr_t *handle) {
	void *h = NULL;
	int rc = p_cublasCreate(&h);
	*handle = (uintptr_t)h;
	return rc;
}

int cublas_destroy(uintptr_t handle) { return p_cublasDestroy((void *)handle); }

int cublas_version(uintptr_t handle, int *version) { return p_cublasGetVersion((void *)handle, version); }

int cublas_set_stream(uintptr_t handle, uintptr_t stream) {
	return p_cublasSetStream((void *)handle, (void *)stream);
}

int cublas_set_workspace(uintptr_t handle, uintptr_t ptr, size_t bytes) {
	return p_cublasSetWorkspace((void *)handle, (void *)ptr, bytes);
}

int cublas_gemm(uintptr_t handle, int ta, int tb, int m, int n, int k, float alpha,
                uintptr_t a, int atype, int lda, uintptr_t b, int btype, int ldb,
                float beta, uintptr_t c, int ctype, int ldc, int compute, int algo) {
	return p_cublasGemmEx((void *)handle, ta, tb, m, n, k, &alpha, (const void *)a, atype, lda,
	                      (const void *)b, btype, ldb, &beta, (void *)c, ctype, ldc, compute, algo);
}
