"""Times the probe update of bench/probe in PyTorch on the CPU, for the ratio.

Usage: /usr/bin/python3 torch_update.py IN BATCH ITERS THREADS
Builds the reference FCNN ([1024,1024,1024]: fc0 IN→1024, fc1 2048→1024, fc2 3072→10,
LeakyReLU then BatchNorm, duplicated dense skips), then times ITERS updates of
zero_grad + forward (train) + cross-entropy + backward + Adam.step on one batch.
Prints one line: "torch ms/update <float> blas <name>".
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class FCNN(nn.Module):
    def __init__(self, n_in, h=1024, classes=10):
        super().__init__()
        self.fc0, self.bn0 = nn.Linear(n_in, h), nn.BatchNorm1d(h)
        self.fc1, self.bn1 = nn.Linear(2 * h, h), nn.BatchNorm1d(h)
        self.fc2 = nn.Linear(3 * h, classes)

    def forward(self, x):
        h0 = self.bn0(F.leaky_relu(self.fc0(x), 0.01))
        h1 = self.bn1(F.leaky_relu(self.fc1(torch.cat([h0, h0], 1)), 0.01))
        return F.leaky_relu(self.fc2(torch.cat([h0, h1, h1], 1)), 0.01)


def blas_name():
    try:
        with open("/proc/self/maps") as f:
            libs = {l.split()[-1] for l in f if "blas" in l}
        return ",".join(sorted(libs)) or "unknown"
    except OSError:
        return "unknown"


def main():
    n_in, batch, iters, threads = (int(a) for a in sys.argv[1:5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = FCNN(n_in).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, n_in)
    y = torch.randint(0, 10, (batch,))

    def update():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    update()  # warm-up: allocations, BLAS thread start
    t0 = time.perf_counter()
    for _ in range(iters):
        update()
    ms = (time.perf_counter() - t0) / iters * 1e3
    print(f"torch ms/update {ms:.3f} blas {blas_name()}")


if __name__ == "__main__":
    main()
