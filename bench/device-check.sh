#!/usr/bin/env bash
# The GPU check, run on a lent GPU machine from the repository root (it has no Go):
#   bench/device-pack.sh here builds build/device/ (compressed binaries + Fashion-MNIST);
#   carry build/device, then run: bash bench/device-check.sh
# Prints a short table: op agreement with the CPU backend, the MCT update vs PyTorch on
# the same GPU and as a fraction of the bf16 GEMM rate, a full Fashion-MNIST MCT run on
# the GPU, and mpirun -np 2 with both ranks on the one GPU; then, while time is left, the
# update's device time per operation (mct's own timing, and Nsight Systems if there).
set -u
cd "$(dirname "$0")/.."
dev=build/device
out=${OUT:-$(mktemp -d)}
bin=/tmp/mct-device
mkdir -p "$bin"
for f in cudaops.test mct-cuda; do
  python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$dev/$f.xz" "$bin/$f"
  chmod +x "$bin/$f"
done
export MCT_FASHION_MNIST_DIR=$PWD/$dev/fmnist MCT_CACHE_DIR=/tmp/mct-device-cache
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
s=$SECONDS
step() { echo "== $1 ($((SECONDS - s)) s)"; }

step "1. cudaops tests: every op and the probe vs the CPU backend (fp32 1e-5, bf16 1e-2); CUDA graphs = direct, bit for bit"
timeout ${T_OPS:-90} "$bin/cudaops.test" -test.count=1 -test.v > "$out/ops.log" 2>&1
# The cudaops: line names the GPU, NVRTC and cuBLAS, or says every test was skipped (no device).
echo "exit $?"; grep '^cudaops:' "$out/ops.log"; grep -E '^(--- FAIL|FAIL|ok|PASS)' "$out/ops.log" | tail -5; grep -c -- '--- PASS' "$out/ops.log"
grep -E -- '--- (FAIL|SKIP)' "$out/ops.log" | head -20
grep -E 'blocks of 256 threads per SM' "$out/ops.log" # TestWaves: the widest kernels' elementwise grids

step "2. PyTorch, the same MCT update on this GPU"
# bench/mct/mct_step.py is the implementation the oracle test checks Go's step against;
# bench/mct's TestDeviceCheckTorchCommand runs this very line on the CPU.
timeout ${T_TORCH:-40} python3 bench/mct/mct_step.py bench --device cuda --dims 1024,1024 --classes 1000 --hidden 1024,1024,1024 --batch 1024 --labeled-batch 1024 --precision fp32,bf16 --updates 30 --warmup 3 --repeats 1 --out "$out/torch.json" 2>&1 | tail -4

step "3. mct bench --device cuda (2 views of 1024, 1000 classes, B=1024, reference FCNN); bf16 also without CUDA graphs, with the batch gathered on the host (MCT_RESIDENT=0), with the logits exchanged through the host (MCT_DEVICE_EXCHANGE=0), and with each segment timed on the device"
for run in bf16 fp32 bf16-nographs bf16-hostgather bf16-hostlogits bf16-segments; do
  p=${run%%-*}
  MCT_CUDA_GRAPHS=$([ $run = bf16-nographs ] && echo 0 || echo 1) MCT_RESIDENT=$([ $run = bf16-hostgather ] && echo 0 || echo 1) \
    MCT_DEVICE_EXCHANGE=$([ $run = bf16-hostlogits ] && echo 0 || echo 1) \
    timeout ${T_BENCH:-30} "$bin/mct-cuda" bench --device cuda \
    --precision $p --dims 1024,1024 --classes 1000 --batch 1024 --updates 30 --warmup 3 --json \
    $([ $run = bf16 ] && echo --roofline) $([ $run = bf16-segments ] && echo --segment-times) > "$out/mct-$run.json" 2> "$out/mct-$run.err"
  echo "$run exit $?"; tail -2 "$out/mct-$run.err"
done

step "4. full MCT run on Fashion-MNIST, default flags, on the GPU"
timeout ${T_FMNIST:-90} "$bin/mct-cuda" train --device cuda --out "$out/fmnist" > "$out/fmnist.log" 2>&1
echo "exit $?"; tail -9 "$out/fmnist.log"; grep -h 'warning' "$out/fmnist.log" | head -3

step "5. mpirun -np 2, both ranks on the one GPU (the logits all-gathered on the device if the MPI is CUDA-aware, else through the host)"
timeout 20 mpirun --oversubscribe -np 1 "$bin/mct-cuda" probe 2>&1 | grep '^mpi:'
# If a run fails, it runs again with the logits through the host (MCT_CUDA_AWARE=0): a
# failure only the first time lies in the device all-gather of a CUDA-aware MPI.
np2() { # np2 NAME SECONDS COMMAND...: stdout to $out/NAME.out (the retry's replaces it), stderr to $out/NAME.err
  local name=$1 t=$2; shift 2
  timeout $t mpirun --oversubscribe -np 2 "$@" > "$out/$name.out" 2> "$out/$name.err"
  local rc=$?
  echo "$name exit $rc"
  if [ $rc != 0 ]; then
    grep -v -e '^---' -e '^ ' -e '^$' "$out/$name.err" | head -5 # mct's lines, not mpirun's boilerplate
    rm -rf "$out/$name" # a train run's directory
    timeout $t mpirun --oversubscribe -np 2 -x MCT_CUDA_AWARE=0 "$@" > "$out/$name.out" 2> "$out/$name-host.err"
    echo "$name again with MCT_CUDA_AWARE=0: exit $?"
  fi
}
np2 np2 ${T_NP2:-45} "$bin/mct-cuda" train --device cuda --epochs 1 --warmup-epochs 5 --out "$out/np2"
tail -3 "$out/np2.err"; tail -4 "$out/np2.out"; grep -h -e 'warning' -e 'GPU placement' "$out/np2.err" | head -3
# The same update as step 3 under mpirun, one rank per view on the one GPU: what the MPI path costs.
np2 mct-bf16-np2 ${T_BENCH:-30} "$bin/mct-cuda" bench --device cuda --precision bf16 --dims 1024,1024 \
  --classes 1000 --batch 1024 --updates 30 --warmup 3 --json
cp "$out/mct-bf16-np2.out" "$out/mct-bf16-np2.json"

step "table"
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
def load(f):
    try: return json.load(open(os.path.join(d, f)))
    except Exception as e: return None
t = load("torch.json") or {}
print(f"{'':59s} {'updates/s':>10s} {'vs torch':>9s} {'of bf16 GEMM':>13s} {'launches/update':>16s} {'upload MB/update':>17s} {'host wait':>10s}")
# launches/update counts rank 0's stream operations; a replayed graph counts as one.
# upload MB/update is what rank 0 copies host to device per update; with the features
# resident the batch is its row indices, and with the logits exchanged on the device
# nothing else but the feedback weights (via host: plus the other view's logits).
# host wait is the share of the update rank 0 spent blocked on the GPU: high when the
# GPU's work bounds the update, low when launches or host work do.
for run in ("fp32", "bf16", "bf16-nographs", "bf16-hostgather", "bf16-hostlogits", "bf16-segments", "bf16-np2"):
    p = run.split("-")[0]
    m = load(f"mct-{run}.json")
    tv = next((r["updates_per_s"] for r in t.get("results", []) if r.get("precision") == p), None)
    if m:
        ratio = f"{m['updates_per_second']/tv:8.1f}x" if tv else "      n/a"
        roof = f"{100*m.get('roofline_fraction',0):12.1f}%" if m.get('roofline_fraction') else f"{'':13s}"
        launches = f"{m['launches_per_update']:16.0f}" if m.get('launches_per_update') else f"{'':16s}"
        upload = f"{m['upload_bytes_per_update']/1e6:17.3f}" if 'upload_bytes_per_update' in m else f"{'':17s}"
        wait = f"{100*m.get('host_wait_seconds_per_update',0)/m['seconds_per_update']:9.0f}%"
        label = f"{p}, graphs {'on' if m.get('cuda_graphs') else 'off'}, {'resident' if m.get('features_resident') else 'host gather'}, logits {m.get('logits_exchange', '?')}"
        if run == "bf16-segments": label += ", timed"
        if run == "bf16-np2": label += f", mpirun -np 2"
        print(f"mct cuda {label:50s} {m['updates_per_second']:10.1f} {ratio} {roof} {launches} {upload} {wait}")
        seg = m.get("segment_seconds_per_update")
        if seg:
            parts = ", ".join(f"{k} {1e3*v:.3f} ms" for k, v in sorted(seg.items()))
            print(f"  device time per update, rank 0: {parts}: {100*sum(seg.values())/m['seconds_per_update']:.0f}% busy (A teacher fwd, B steps 2-4, C teacher step)")
    if tv and run in ("fp32", "bf16"): print(f"torch {p:53s} {tv:10.1f}")
s = load("fmnist/summary.json")
if s: print("fmnist gpu: test ensemble %.4f per view %s, %.1f s, cuda graphs %s" % (s["test_accuracy"]["ensemble"], s["test_accuracy"]["per_view"], s["wall_seconds"], s.get("cuda_graphs")))
s = load("np2/summary.json")
if s: print("np2 on one gpu: test ensemble %.4f, transport %s, backend %s, logits via %s, cuda graphs %s" % (s["test_accuracy"]["ensemble"], s["transport"], s["backend"], s.get("logits_exchange"), s.get("cuda_graphs")))
try: # counted when build/device was packed (bench/device-pack.sh), to set against the device time above
    print("floor counted here:", [l.strip() for l in open("build/device/traffic.txt") if l.startswith("at ")][0])
except Exception as e: print("floor counted here: none (%s)" % e)
syncs = [r.get("host_syncs_per_update") for r in t.get("results", [])]
print("gpu:", t.get("device"), "torch", t.get("torch"), "host syncs per torch update", syncs)
PY

# Which kernels the update's device time goes to (set against BenchmarkDeviceTraffic's
# floors in bench/RESULTS.md): mct's own timing of every operation of the bf16 update,
# then Nsight Systems when the machine has it, each only while time is left.
if [ $((SECONDS - s)) -lt ${T_OPTIMES_START:-480} ]; then
  step "6. device time per operation of the bf16 update, timed one by one (mct bench --op-times)"
  timeout ${T_OPTIMES:-40} "$bin/mct-cuda" bench --device cuda --precision bf16 --dims 1024,1024 --classes 1000 \
    --batch 1024 --updates 10 --warmup 3 --op-times > "$out/optimes.log" 2>&1
  echo "exit $?"; grep -A22 '^device time per update by operation' "$out/optimes.log" ||
    { grep -m2 -e '^panic' -e 'rror' "$out/optimes.log"; tail -3 "$out/optimes.log"; } # a panic's message is its first line
else
  step "6. skipped: too little time left"
fi
nsys=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
if [ -n "$nsys" ] && [ $((SECONDS - s)) -lt ${T_NSYS_START:-450} ]; then
  step "7. per-kernel device time of 20 bf16 updates with CUDA graphs (nsys, graph nodes traced)"
  # The report stays out of $out (tens of MB, not wanted back); -f: a warm machine keeps /tmp.
  timeout -k 10 ${T_NSYS:-60} "$nsys" profile -t cuda --cuda-graph-trace=node --sample=none --cpuctxsw=none -f true -o "$bin/prof" \
    "$bin/mct-cuda" bench --device cuda --precision bf16 --dims 1024,1024 --classes 1000 --batch 1024 \
    --updates 20 --warmup 3 > "$out/nsys.log" 2>&1
  echo "exit $?"
  # The kernel summary is gpukernsum before Nsight Systems 2023 (2022.4 has no cuda_gpu_kern_sum,
  # and its stats exits 0 on an unknown report name, so ask which one it has).
  rep=cuda_gpu_kern_sum; "$nsys" stats --help-reports 2>&1 | grep -q cuda_gpu_kern_sum || rep=gpukernsum
  timeout -k 5 ${T_NSYS_STATS:-40} "$nsys" stats --report $rep "$bin/prof.nsys-rep" 2>&1 | grep -v '^$' | head -24
else
  step "7. skipped: no nsys on this machine, or too little time left"
fi
