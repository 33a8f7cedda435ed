#!/usr/bin/env bash
# Installs what mct needs on a Debian machine, only what is missing. Idempotent.
# `scripts/setup.sh run` (make run): building and running; `scripts/setup.sh test`
# (make test, .ci/run): also what the tests compare against or start.
set -euo pipefail
pkgs=(
  pkg-config libopenmpi-dev openmpi-bin        # MPI transport (cgo) and mpirun
  libopenblas-dev                              # CPU GEMM (linked statically)
  dataset-fashion-mnist                        # the embedded default's data
)
if [ "${1:-test}" = test ]; then
  pkgs+=(
    libopenblas0-pthread                       # makes Debian's torch use OpenBLAS (a fair baseline)
    python3-torch python3-numpy                # PyTorch oracle tests and the baseline benchmark
    slurm-wlm munge                            # the one-node SLURM cluster test
  )
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Pretrained views fetch nsfwjs with npm, and their oracle tests run TF.js under node,
# which fail under CI when absent. Any Node.js with npm will do (this VM has 20 from
# NodeSource), so Debian's npm (with its nodejs 18) comes in only when none is found.
if ! command -v npm >/dev/null; then
  if [ "${1:-test}" = test ]; then
    missing+=(npm)
  else
    echo "setup: npm not found: pretrained views need Node.js with npm (apt-get install npm)" >&2
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
