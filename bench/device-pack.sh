#!/usr/bin/env bash
# Builds here what bench/device-check.sh runs on a GPU machine that has no Go: the cuda
# build of mct and the cudaops test binary (xz-compressed), Fashion-MNIST's files, and
# the update's traffic floor counted from this code (train's BenchmarkDeviceTraffic),
# which the check prints beside the device time it measures.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cuda-headers.sh)"
dev=build/device
mkdir -p "$dev/fmnist"
flags=(-tags cuda -trimpath -ldflags "-s -w")
go build "${flags[@]}" -o "$dev/mct-cuda" .
go test "${flags[@]}" -c -o "$dev/cudaops.test" ./cudaops/
for f in mct-cuda cudaops.test; do xz -T2 -6 -f "$dev/$f"; done
cp /usr/share/datasets/fashion-mnist/*.gz "$dev/fmnist/"
go test ./train -run '^$' -bench DeviceTraffic -benchtime 1x | grep -e '^|' -e '^at ' -e '^its ' > "$dev/traffic.txt"
du -sh "$dev"
