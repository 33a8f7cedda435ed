//go:build cgo

package cudalib

// #cgo LDFLAGS: -ldl
// #include <stdlib.h>
// #include "dl.h"
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// Dirs are the directories searched, after the dynamic linker's own path,
// for the CUDA libraries: CUDA_HOME and CUDA_PATH when set, then the
// toolkit's usual place. A toolkit under /usr/local/cuda is often not in the
// linker cache of cluster nodes.
func Dirs() []string {
	var d []string
	for _, env := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if v := os.Getenv(env); v != "" {
			d = append(d, filepath.Join(v, "lib64"), filepath.Join(v, "targets/x86_64-linux/lib"))
		}
	}
	return append(d, "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib")
}

// library is what NVRTC and cuBLAS have in common: which sonames to try, which
// companion library must be loaded first when opening from a directory, and
// how to resolve the entry points.
type library struct {
	stem      string // "libnvrtc"
	versions  []string
	companion string // glob of a library it dlopens by soname, relative to its directory
	resolve   func(h cuintptr) error

	// What load found: the library is process-wide, as the C side keeps one table of
	// entry points per library, filled once.
	once sync.Once
	path string
	err  error
}

// cuintptr is a library handle from dlopen.
type cuintptr = C.uintptr_t

// open tries each candidate in order: a path opens that file (with its
// companion from the same directory); a bare soname goes through the dynamic
// linker, then through each of dirs.
func (l *library) open(candidates []string, dirs []string) (string, error) {
	var tried []string
	try := func(path string) (bool, error) {
		if strings.Contains(path, "/") {
			if _, err := os.Stat(path); err != nil {
				tried = append(tried, path+": not found")
				return false, nil
			}
			if l.companion != "" {
				comp, _ := filepath.Glob(filepath.Join(filepath.Dir(path), l.companion))
				sort.Strings(comp)
				for _, c := range comp {
					// Best effort: if it fails, the real open below says why.
					dlopen(c)
				}
			}
		}
		h, err := dlopen(path)
		if err != nil {
			tried = append(tried, err.Error())
			return false, nil
		}
		if err := l.resolve(h); err != nil {
			return false, fmt.Errorf("%s: %w", path, err)
		}
		return true, nil
	}
	for _, c := range candidates {
		paths := []string{c}
		if !strings.Contains(c, "/") {
			for _, d := range dirs {
				paths = append(paths, filepath.Join(d, c))
			}
		}
		for _, p := range paths {
			ok, err := try(p)
			if err != nil {
				return "", err
			}
			if ok {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("cannot load %s (tried %s); install the CUDA toolkit's %s or set CUDA_HOME", l.stem, strings.Join(tried, "; "), l.stem)
}

// Sonames lists the sonames of stem for the given versions, newest first,
// keeping only those no newer than the driver: code from a newer NVRTC (PTX
// version) or a newer cuBLAS needs a newer driver. driverMajor 0 keeps all.
func (l *library) sonames(driverMajor int) []string {
	var out []string
	for _, v := range l.versions {
		var major int
		fmt.Sscanf(v, "%d", &major)
		if driverMajor == 0 || major <= driverMajor {
			out = append(out, l.stem+".so."+v)
		}
	}
	return out
}

func dlopen(path string) (C.uintptr_t, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var buf [512]C.char
	h := C.dl_open(cs, &buf[0], C.size_t(len(buf)))
	if h == 0 {
		return 0, errors.New(C.GoString(&buf[0]))
	}
	return h, nil
}

func resolver(load func(C.uintptr_t, *C.char, C.size_t) C.int) func(C.uintptr_t) error {
	return func(h C.uintptr_t) error {
		var buf [256]C.char
		if load(h, &buf[0], C.size_t(len(buf))) != 0 {
			return errors.New(C.GoString(&buf[0]))
		}
		return nil
	}
}

var nvrtcLib = &library{
	stem:      "libnvrtc",
	versions:  []string{"13", "12", "11.2"},
	companion: "libnvrtc-builtins.so.*",
	resolve:   resolver(func(h C.uintptr_t, e *C.char, n C.size_t) C.int { return C.nvrtc_load(h, e, n) }),
}

var cublasLib = &library{
	stem:      "libcublas",
	versions:  []string{"13", "12", "11"},
	companion: "libcublasLt.so.*",
	resolve:   resolver(func(h C.uintptr_t, e *C.char, n C.size_t) C.int { return C.cublas_load(h, e, n) }),
}

// load opens l once per process (candidates first, then the sonames no newer than
// driverMajor, see open) and returns what that first call found.
func (l *library) load(driverMajor int, candidates []string) (string, error) {
	l.once.Do(func() {
		l.path, l.err = l.open(append(candidates, l.sonames(driverMajor)...), Dirs())
	})
	return l.path, l.err
}

// NVRTC is the loaded NVRTC library.
type NVRTC struct{ path string }

// LoadNVRTC opens NVRTC once per process. candidates are sonames or paths to
// try first (tests use them); then libnvrtc.so.<v> for the versions no newer
// than driverMajor (the CUDA driver's major version, 0 for any), through the
// dynamic linker and Dirs().
func LoadNVRTC(driverMajor int, candidates ...string) (*NVRTC, error) {
	path, err := nvrtcLib.load(driverMajor, candidates)
	if err != nil {
		return nil, err
	}
	return &NVRTC{path: path}, nil
}

// Path is the file or soname that was loaded.
func (n *NVRTC) Path() string { return n.path }

// Version is NVRTC's version, as (major, minor).
func (n *NVRTC) Version() (int, int) {
	var ma, mi C.int
	C.nvrtc_version(&ma, &mi)
	return int(ma), int(mi)
}

// Compile compiles CUDA C++ source to PTX with the given NVRTC options (for
// example "--gpu-architecture=compute_90"). The log holds the compiler's
// warnings; on failure the error carries it.
func (n *NVRTC) Compile(src, name string, opts ...string) (ptx string, log string, err error) {
	csrc, cname := C.CString(src), C.CString(name)
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(unsafe.Pointer(cname))
	copts := C.malloc(C.size_t(len(opts)+1) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(copts)
	arr := unsafe.Slice((**C.char)(copts), len(opts)+1)
	for i, o := range opts {
		arr[i] = C.CString(o)
		defer C.free(unsafe.Pointer(arr[i]))
	}
	var cptx, clog *C.char
	var ptxlen C.size_t
	rc := C.nvrtc_compile(csrc, cname, C.int(len(opts)), (**C.char)(copts), &cptx, &ptxlen, &clog)
	if clog != nil {
		log = strings.TrimSpace(C.GoString(clog))
		C.free(unsafe.Pointer(clog))
	}
	if cptx != nil {
		// The PTX is NUL-terminated text; keep it without the NUL.
		ptx = C.GoString(cptx)
		C.free(unsafe.Pointer(cptx))
	}
	if rc != 0 {
		return "", log, fmt.Errorf("nvrtc: compile %s: %s:\n%s", name, C.GoString(C.nvrtc_error(rc)), log)
	}
	return ptx, log, nil
}

// CUBLAS is the loaded cuBLAS library.
type CUBLAS struct{ path string }

// LoadCUBLAS opens cuBLAS once per process, like LoadNVRTC.
func LoadCUBLAS(driverMajor int, candidates ...string) (*CUBLAS, error) {
	path, err := cublasLib.load(driverMajor, candidates)
	if err != nil {
		return nil, err
	}
	return &CUBLAS{path: path}, nil
}

// Path is the file or soname that was loaded.
func (c *CUBLAS) Path() string { return c.path }

// Handle is a cuBLAS handle. It belongs to the CUDA context that was current
// when it was created and must be used with that context current.
type Handle struct{ h C.uintptr_t }

// DataType is cudaDataType_t.
type DataType int

// ComputeType is cublasComputeType_t.
type ComputeType int

// Values from library_types.h and cublas_api.h (stable across CUDA 11–13).
const (
	R32F  DataType = 0
	R16BF DataType = 14

	// Compute32F is plain fp32 (no TF32 under the default math mode).
	Compute32F ComputeType = 68
	// Compute32FFast16BF lets cuBLAS round fp32 inputs to bf16 for tensor
	// cores, accumulating in fp32.
	Compute32FFast16BF ComputeType = 75
	// Compute32FFastTF32 lets cuBLAS round fp32 inputs to TF32.
	Compute32FFastTF32 ComputeType = 77
)

// cublasGemmAlgo_t: let cuBLAS choose (tensor cores where the compute type allows).
const gemmDefault = -1

func cublasErr(what string, rc C.int) error {
	if rc == 0 {
		return nil
	}
	return fmt.Errorf("cublas: %s: status %d (%s)", what, int(rc), cublasStatus(int(rc)))
}

func cublasStatus(rc int) string {
	switch rc {
	case 1:
		return "NOT_INITIALIZED: no usable GPU or driver"
	case 3:
		return "ALLOC_FAILED"
	case 7:
		return "INVALID_VALUE"
	case 8:
		return "ARCH_MISMATCH"
	case 11:
		return "MAPPING_ERROR"
	case 13:
		return "EXECUTION_FAILED"
	case 14:
		return "INTERNAL_ERROR"
	case 15:
		return "NOT_SUPPORTED"
	}
	return "see cublasStatus_t"
}

// NewHandle creates a handle in the current CUDA context.
func (c *CUBLAS) NewHandle() (Handle, error) {
	var h C.uintptr_t
	if err := cublasErr("cublasCreate", C.cublas_create(&h)); err != nil {
		return Handle{}, err
	}
	return Handle{h}, nil
}

// Destroy releases the handle.
func (h Handle) Destroy() error { return cublasErr("cublasDestroy", C.cublas_destroy(h.h)) }

// Version is cuBLAS's version number (for example 130000).
func (h Handle) Version() (int, error) {
	var v C.int
	err := cublasErr("cublasGetVersion", C.cublas_version(h.h, &v))
	return int(v), err
}

// SetStream makes later calls run on stream (a CUstream value).
func (h Handle) SetStream(stream uintptr) error {
	return cublasErr("cublasSetStream", C.cublas_set_stream(h.h, C.uintptr_t(stream)))
}

// SetWorkspace gives cuBLAS bytes of device memory at ptr as its workspace for later
// calls, instead of memory it allocates itself (cuBLAS 11+: cublasSetWorkspace_v2).
// A GEMM captured into a CUDA graph must not allocate, hence a fixed workspace; and
// with the same workspace whether captured or not, cuBLAS picks the same algorithm,
// so graphs do not change results.
func (h Handle) SetWorkspace(ptr uintptr, bytes int) error {
	return cublasErr("cublasSetWorkspace", C.cublas_set_workspace(h.h, C.uintptr_t(ptr), C.size_t(bytes)))
}

// GemmRowMajor computes C = alpha·op(A)·op(B) + beta·C for row-major
// matrices (C is m×n, op(A) m×k, op(B) k×n; lda, ldb, ldc are row strides in
// elements) with device pointers a, b, c. cuBLAS is column-major; a row-major
// C is a column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so the operands swap.
func (h Handle) GemmRowMajor(transA, transB bool, m, n, k int, alpha float32,
	a uintptr, at DataType, lda int, b uintptr, bt DataType, ldb int,
	beta float32, c uintptr, ct DataType, ldc int, compute ComputeType) error {
	rc := C.cublas_gemm(h.h, op(transB), op(transA), C.int(n), C.int(m), C.int(k), C.float(alpha),
		C.uintptr_t(b), C.int(bt), C.int(ldb), C.uintptr_t(a), C.int(at), C.int(lda),
		C.float(beta), C.uintptr_t(c), C.int(ct), C.int(ldc), C.int(compute), gemmDefault)
	return cublasErr("cublasGemmEx", rc)
}

func op(t bool) C.int {
	if t {
		return 1
	}
	return 0
}
