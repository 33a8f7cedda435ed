#!/usr/bin/env bash
# Fetches Debian's CUDA 11.8 headers and stub libcuda (non-free package
# nvidia-cuda-dev) into a cache directory so that `go build -tags cuda` works on
# machines without a CUDA toolkit, plus NVRTC 11.8 (libnvrtc11.2,
# libnvrtc-builtins11.8) so that the kernel source can be compiled to PTX here,
# without a GPU, by the tests of cudaops/cudalib. Idempotent: a second run only prints the
# exports. Usage:
#   eval "$(scripts/cuda-headers.sh)"      # sets CGO_CFLAGS / CGO_LDFLAGS
#   go vet -tags cuda ./cudaops/
# The cache defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/mct/cuda-11.8; set
# MCT_CUDA_CACHE to move it. Only usr/include and the stub libraries are kept
# (about 16 MB of the 774 MB package); NVRTC adds about 55 MB. Binaries built this way link libcuda.so.1
# dynamically and load the real driver at run time; cuBLAS, NVRTC and NVML are
# opened with dlopen, so nothing else from CUDA is linked.
set -euo pipefail
cache=${MCT_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mct/cuda-11.8}
lib=$cache/usr/lib/x86_64-linux-gnu
stubs=$lib/stubs

emit() {
  echo "export CGO_CFLAGS=\"-I$cache/usr/include\""
  echo "export CGO_LDFLAGS=\"-L$stubs\""
}

if [ -f "$cache/usr/include/cuda.h" ] && [ -f "$stubs/libcuda.so" ] && [ -f "$lib/libnvrtc.so.11.2" ]; then
  emit
  exit 0
fi

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
# nvidia-cuda-dev lives in bookworm's non-free component, which the default
# sources do not enable. Add it once, in a file of our own.
if ! apt-cache policy nvidia-cuda-dev 2>/dev/null | grep -q "Candidate: [0-9]"; then
  src=/etc/apt/sources.list.d/mct-nonfree.sources
  echo "cuda-headers: enabling bookworm contrib non-free in $src" >&2
  $sudo tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  $sudo apt-get update -qq
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "cuda-headers: downloading nvidia-cuda-dev (774 MB) and NVRTC into $tmp" >&2
(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root nvidia-cuda-dev libnvrtc11.2 libnvrtc-builtins11.8)
deb=$(ls "$tmp"/nvidia-cuda-dev_*.deb)
rm -rf "$cache.part"
mkdir -p "$cache.part"
# Extract only what a cgo build needs; the static libraries are most of the package.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache.part" ./usr/include ./usr/lib/x86_64-linux-gnu/stubs
for d in "$tmp"/libnvrtc*.deb; do dpkg-deb -x "$d" "$cache.part"; done
rm -rf "$cache"
mv "$cache.part" "$cache"
[ -f "$cache/usr/include/cuda.h" ] || { echo "cuda-headers: $deb has no usr/include/cuda.h; check the package layout" >&2; exit 1; }
[ -f "$cache/usr/lib/x86_64-linux-gnu/libnvrtc.so.11.2" ] || { echo "cuda-headers: libnvrtc.so.11.2 missing after extraction" >&2; exit 1; }
[ -f "$stubs/libcuda.so" ] || { echo "cuda-headers: $deb has no stubs/libcuda.so; check the package layout" >&2; exit 1; }
echo "cuda-headers: ready in $cache" >&2
emit
