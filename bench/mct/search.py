"""Random search of MCT's hyperparameters, judged on seed-1 VALIDATION only.

Each run is `./mct train` (the default MCT run) with one random draw of the flags below;
it prints the run's own supervised warmup (its baseline) and its ensemble after MCT, both
on the validation split. Run from the repository root after `make build`:

    python3 bench/mct/search.py [RUNS] [OUT_DIR]     # defaults: 24 runs, runs/search

About 20 min on 2 cores for 24 runs. Results: README, Results.
"""
import json
import os
import random
import subprocess
import sys

SPACE = {
    "--mct-lr": ["1.25e-4", "2.5e-4", "6.25e-5", "5e-4"],
    "--pseudo-temperature": ["0.25", "0.5", "1"],
    "--epochs": ["3", "6"],
    "--batch": ["256", "512", "1024"],
    "--dropout": ["0", "0.2"],
    "--labeled-batch": ["0", "128"],
    "--clip": ["1", "5"],
    "--hidden": ["256,256,256", "512,512,512"],
}


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    out = sys.argv[2] if len(sys.argv) > 2 else "runs/search"
    os.makedirs(out, exist_ok=True)
    rng = random.Random(7)
    print("| run | warmup (supervised) | after MCT | gain | flags |")
    print("|---|---:|---:|---:|---|")
    for i in range(runs):
        flags = [f"{k}={rng.choice(v)}" for k, v in SPACE.items()]
        if rng.random() < 0.25:
            flags.append("--hard")
        d = os.path.join(out, f"r{i:02d}")
        summary = os.path.join(d, "summary.json")
        if not os.path.exists(summary):
            with open(d + ".log", "w") as log:
                subprocess.run(["./mct", "train", "--quiet", "--out", d] + flags, stdout=log, stderr=log)
        try:
            with open(summary) as f:
                s = json.load(f)
        except OSError:
            print(f"| r{i:02d} | failed, see {d}.log | | | {' '.join(flags)} |", flush=True)
            continue
        w, a = 100 * s["warmup_val_accuracy"]["ensemble"], 100 * s["val_accuracy"]["ensemble"]
        print(f"| r{i:02d} | {w:.2f} | {a:.2f} | {a - w:+.2f} | `{' '.join(flags)}` |", flush=True)


if __name__ == "__main__":
    main()
