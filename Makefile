# mct — build, run, test. `make run` and `make test` install what is missing (Debian, apt).
GO      ?= go
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# mpirun as root (CI, containers) needs these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

.PHONY: setup setup-run build mct static cuda run test fuzz bench clean

setup:
	@scripts/setup.sh test

setup-run:
	@scripts/setup.sh run

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o mct .

# `make mct` rebuilds too (without this rule make would call the existing file up to date).
mct: build

# Fully static, no MPI (local transport only), pure-Go GEMM.
static:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o mct-static .

# The CUDA backend (--device cuda): Debian's CUDA headers to build; at run time the
# driver's libcuda, with cuBLAS and NVRTC opened by dlopen (CUDA 11-13).
cuda:
	eval "$$(scripts/cuda-headers.sh)" && $(GO) build -tags cuda -ldflags '$(LDFLAGS)' -o mct-cuda .

run: setup-run build
	./mct train

# The SLURM test starts a one-node cluster (root) and runs the real ./mct in a job array.
SLURM_ENV = MCT_SLURM_TEST=1 MCT_BIN=mct MCT_SLURM_TIMEOUT=400 MCT_CACHE_DIR=/tmp/mct-test-cache \
	MCT_SLURM_FIXED='{"views":["pixels","hog"],"labeled":0.01,"epochs":1,"warmup-epochs":1,"hidden":[64,64],"val":1000,"batch":4096}' \
	MCT_SLURM_FIXED_LONG='{"views":["pixels","hog"],"labeled":0.01,"epochs":1,"warmup-epochs":2,"hidden":[64,64],"val":1000,"batch":256,"checkpoint-every":10}'

test: setup build cuda
	$(GO) vet ./...
	eval "$$(scripts/cuda-headers.sh)" && $(GO) vet -tags cuda ./cudaops/... .
	$(SLURM_ENV) $(GO) test -timeout 20m ./...
	$(MAKE) fuzz

# Each fuzz target briefly (CI), for a number of inputs rather than a duration: Go 1.26's
# fuzzing coordinator can fail a duration-bounded run with "context deadline exceeded" when
# the deadline catches a busy worker (golang/go#75804, fixed in Go 1.27); a count has no
# deadline. The counts take about 10 s each on a 2-core machine (FuzzDecode's inputs cost
# more: zstd and CRC). Longer locally with FUZZTIME=5m, a duration.
FUZZ_N ?= 300000x
FUZZ_N_DECODE ?= 100000x
fuzz:
	$(GO) test ./data/ -run '^$$' -fuzz '^FuzzNPY$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_N))
	$(GO) test ./data/ -run '^$$' -fuzz '^FuzzIDX$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_N))
	$(GO) test ./ckpt/ -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_N_DECODE))
	$(GO) test ./ckpt/ -run '^$$' -fuzz '^FuzzParseSafetensors$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_N))
	$(GO) test ./data/pretrained/ -run '^$$' -fuzz '^FuzzExportedLiteral$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_N))

bench: build
	$(GO) test ./bench/... -run '^$$' -bench . -benchtime 5x

clean:
	rm -rf mct mct-static mct-cuda build
