#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after bench/gpu/build.sh
# built build/gpu/ elsewhere (the GPU machine has no Go):
#   1. the cudaops tests: every kernel and the probe against the CPU backend;
#   2. the MCT update in PyTorch (bench/gpu/mct_step.py), fp32, tf32 and bf16;
#   3. the same update on mct's CUDA backend, the bf16 GEMM roofline, and the
#      table comparing them.
# PYTHON picks the interpreter with PyTorch (default python3). UPDATES sets
# the timed updates per precision (default 100). Exit status: the tests'.
set -u
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
tmp=${OUT:-$(mktemp -d)}
updates=${UPDATES:-100}
mkdir -p "$tmp"
bin=$(mktemp -d)
for f in cudaops.test mct-gpu-bench; do
  [ -f "build/gpu/$f.xz" ] || { echo "gpu-check: build/gpu/$f.xz missing: run bench/gpu/build.sh on a build machine and carry build/gpu" >&2; exit 2; }
  # xz may be absent on the GPU machine; Python's lzma is not.
  "$py" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "build/gpu/$f.xz" "$bin/$f"
  chmod +x "$bin/$f"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null

echo "== 1. cudaops tests"
"$bin/cudaops.test" -test.v -test.count=1 >"$tmp/tests.log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
  grep -E '^cudaops:|^\s*--- |^(PASS|FAIL|ok)' "$tmp/tests.log" | tail -n 60
else
  # Failures, panics and launch errors: show the end of the log as it is.
  grep -E '^cudaops:|^\s*--- FAIL|backendtest.go|_test.go' "$tmp/tests.log" | head -n 60
  echo "-- last lines of $tmp/tests.log:"
  tail -n 40 "$tmp/tests.log"
fi
echo "tests exit status: $rc ($SECONDS s so far)"

echo "== 2. PyTorch"
"$py" bench/gpu/mct_step.py --out "$tmp/torch.json" --updates "$((updates / 2))" 2>&1 | tail -n 20
echo "($SECONDS s so far)"
torch=()
[ -s "$tmp/torch.json" ] && torch=(--torch "$tmp/torch.json")

echo "== 3. mct"
"$bin/mct-gpu-bench" --updates "$updates" "${torch[@]}" 2>&1 | tail -n 30
echo "($SECONDS s in all)"
exit $rc
