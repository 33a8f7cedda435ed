#!/usr/bin/env bash
# Builds, here (no GPU needed), the two binaries bench/gpu/gpu-check.sh runs on
# the GPU machine, xz-compressed (about 12 MB in all, for the carry limit), into
# build/gpu/ (ignored by git; carry it to the device).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(scripts/cuda-headers.sh)"
mkdir -p build/gpu
flags=(-tags cuda -trimpath -ldflags="-s -w")
go test "${flags[@]}" -c -o build/gpu/cudaops.test ./cudaops/
go build "${flags[@]}" -o build/gpu/mct-gpu-bench ./bench/gpu/
xz -T2 -6 -f build/gpu/cudaops.test build/gpu/mct-gpu-bench
ls -l build/gpu
