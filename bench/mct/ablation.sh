#!/usr/bin/env bash
# What limits MCT on the embedded default: seed-1 variants of `./mct train`, compared on
# the VALIDATION ensemble (warmup = the supervised baseline of the same run → after MCT),
# and the meta-feedback ablation over 3 seeds on test. Runs from the repository root
# after `make build`; ~12 min on 2 cores with the views cached. Results: README, Results.
#   bench/mct/ablation.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ablation}
mkdir -p "$out"

variant() { # name flags...
  local name=$1; shift
  [ -f "$out/$name/summary.json" ] && return
  # Each training is quiet (its log is a file): one line per variant says the script is
  # alive through its minutes before the tables.
  echo "ablation: ${SECONDS}s: $name${*:+ ($*)}" >&2
  ./mct train --quiet --out "$out/$name" "$@" > "$out/$name.log" 2>&1 ||
    { echo "ablation: $name failed, see $out/$name.log" >&2; exit 1; }
}

variant default
variant no-feedback --no-feedback
variant warmup-5 --warmup-epochs 5
variant warmup-10 --warmup-epochs 10
variant batch-128 --batch 128 --epochs 2
variant epochs-10 --epochs 10
variant dropout-0.5 --dropout 0.5
variant hard --hard
variant T-1 --pseudo-temperature 1
variant exact-h --exact-h
variant mlp --arch mlp
variant linear --arch linear
variant views+pixels --views hog,gabor,pixels
variant views+randconv --views hog,gabor,randconv
for pair in pixels,lbp lbp,randconv pixels,randconv hog,lbp gabor,lbp pixels,gabor hog,randconv; do
  variant "pair-$pair" --views "$pair"
done
for s in 2 3; do
  variant default-s$s --seed $s
  variant no-feedback-s$s --seed $s --no-feedback
done

echo "Seed 1, validation ensemble accuracy (%): supervised warmup of the run → after MCT"
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
print("| variant | warmup (supervised) | after MCT | gain | agreement at the end |")
print("|---|---:|---:|---:|---:|")
for name in sorted(os.listdir(d)):
    p = os.path.join(d, name, "summary.json")
    if name.endswith(("-s2", "-s3")) or not os.path.exists(p):
        continue
    s = json.load(open(p))
    agree = [json.loads(l)["record"].get("agreement") for l in open(os.path.join(d, name, "metrics.jsonl"))
             if '"phase":"mct"' in l]
    w, f = s["warmup_val_accuracy"]["ensemble"] * 100, s["val_accuracy"]["ensemble"] * 100
    a = f"{agree[-1]:.3f}" if agree and agree[-1] is not None else ""
    print(f"| {name} | {w:.2f} | {f:.2f} | {f - w:+.2f} | {a} |")
PY
echo
echo "Seeds 1–3, test accuracy: MCT with and without the teachers' meta-feedback"
./mct report "$out"/default "$out"/default-s2 "$out"/default-s3 "$out"/no-feedback "$out"/no-feedback-s2 "$out"/no-feedback-s3
