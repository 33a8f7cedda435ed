"""PyTorch implementation of the MCT update that `mct bench --device cuda` times.

Same schedule as train/step.go (DESIGN.md "The MCT step"), written as a
PyTorch user would on a GPU: per view 1 forward on U, 2 on X, 2 backwards on U, 1 on X,
two Adam steps. The teacher's backward must use the pre-update weights, which
autograd forbids after an in-place optimizer step, so the teacher direction is
back-propagated before the student step (the gradient is linear in h) and
scaled by h afterwards: the same number of passes.

    python3 mct_step.py --out torch.json [--precision fp32,tf32,bf16] [--device cuda]

Prints one line per precision and writes JSON; bench/device-check.sh tabulates it.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class FCNN(nn.Module):
    """The reference FCNN traced exactly (DESIGN.md "The model"), any depth."""

    def __init__(self, inp, hidden, classes, slope=0.01, temperature=1.0):
        super().__init__()
        self.slope, self.t = slope, temperature
        self.fc = nn.ModuleList()
        self.bn = nn.ModuleList()
        widths = []
        for i, h in enumerate(hidden[:-1]):
            w_in = inp if i == 0 else sum(widths) + widths[-1]
            self.fc.append(nn.Linear(w_in, h))
            self.bn.append(nn.BatchNorm1d(h))
            widths.append(h)
        self.fc.append(nn.Linear(sum(widths) + widths[-1], classes))

    def forward(self, x):
        hs = []
        for i, bn in enumerate(self.bn):
            inp = x if i == 0 else torch.cat(hs + [hs[-1]], dim=1)
            hs.append(bn(F.leaky_relu(self.fc[i](inp), self.slope)))
        return F.leaky_relu(self.fc[-1](torch.cat(hs + [hs[-1]], dim=1)), self.slope) / self.t


def clip_(grads, max_norm=1.0):
    norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)


class Update:
    def __init__(self, args, device, precision):
        torch.manual_seed(1)
        self.dev, self.B, self.C, self.T = device, args.batch, args.classes, 1.0
        self.autocast = precision == "bf16"
        V = args.views
        self.models = [FCNN(args.inp, args.hidden, args.classes).to(device) for _ in range(V)]
        self.opts = [torch.optim.Adam(m.parameters(), lr=1e-4) for m in self.models]
        self.U = [torch.randn(args.batch, args.inp, device=device) for _ in range(V)]
        self.X = [torch.randn(args.batch, args.inp, device=device) for _ in range(V)]
        self.y = torch.randint(args.classes, (args.batch,), device=device)

    def fwd(self, v, x):
        with torch.autocast(device_type=self.dev.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.models[v](x).float()

    def run(self):
        V, B = len(self.models), self.B
        params = [list(m.parameters()) for m in self.models]
        # 1. Teacher pass, graph kept.
        zU = [self.fwd(v, self.U[v]) for v in range(V)]
        # 2. Pseudo-labels by Gumbel-max from the other views' mean logits.
        with torch.no_grad():
            m = [sum(zU[u].detach() for u in range(V) if u != v) / (V - 1) for v in range(V)]
            gumbel = [-torch.log(-torch.log(torch.rand_like(mv))) for mv in m]
            yhat = [(m[v] / self.T + gumbel[v]).argmax(dim=1) for v in range(V)]
            q = [F.softmax(m[v] / self.T, dim=1) for v in range(V)]
            direction = [(q[v] - F.one_hot(yhat[v], self.C).float()) / B for v in range(V)]
        # Student gradients (CE on the pseudo-labels) and, for each teacher w,
        # the unscaled teacher direction of every other view's pseudo-labels.
        g_student, g_dir = [], []
        for v in range(V):
            g_student.append(torch.autograd.grad(F.cross_entropy(zU[v], yhat[v]), params[v], retain_graph=True))
            out_grad = sum(direction[u] for u in range(V) if u != v) / (V - 1)
            g_dir.append(torch.autograd.grad(zU[v], params[v], grad_outputs=out_grad))
        # 3–4. Student step and feedback h on the same labeled batch.
        h = []
        for v in range(V):
            with torch.no_grad():
                before = F.cross_entropy(self.fwd(v, self.X[v]), self.y)
            for p, g in zip(params[v], g_student[v]):
                p.grad = g.clone()
            clip_([p.grad for p in params[v]])
            self.opts[v].step()
            self.opts[v].zero_grad(set_to_none=False)
            after = F.cross_entropy(self.fwd(v, self.X[v]), self.y)
            after.backward()
            h.append((before - after).item())
        # 5. Teacher step: supervised gradient plus the h-weighted direction.
        for w in range(V):
            hw = sum(h[v] for v in range(V) if v != w) / (V - 1) if V == 2 else None
            # For V > 2 each view's h weighs its own direction; the
            # benchmark's shape (V = 2) has one other view.
            for p, g in zip(params[w], g_dir[w]):
                p.grad.add_(g, alpha=hw)
            clip_([p.grad for p in params[w]])
            self.opts[w].step()
            self.opts[w].zero_grad(set_to_none=False)
        return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="fp32,tf32,bf16")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--inp", type=int, default=1024)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--hidden", default="1024,1024,1024")
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--updates", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: leave torch's default)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    args.hidden = [int(w) for w in args.hidden.split(",")]
    if args.views != 2:
        ap.error("--views: this script implements the two-view update")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    results = []
    for prec in args.precision.split(","):
        if prec not in ("fp32", "tf32", "bf16"):
            ap.error(f"--precision {prec}: want fp32, tf32 or bf16")
        # "highest" keeps fp32 matmuls in fp32, "high" allows TF32; bf16 runs
        # under autocast, with TF32 for what autocast leaves in fp32.
        torch.set_float32_matmul_precision("highest" if prec == "fp32" else "high")
        u = Update(args, device, prec)
        for _ in range(args.warmup):
            u.run()
        sync()
        t0 = time.perf_counter()
        for _ in range(args.updates):
            h = u.run()
        sync()
        el = time.perf_counter() - t0
        ups = args.updates / el
        print(f"torch {prec}: {args.updates} updates in {el * 1e3:.0f} ms ({ups:.1f} updates/s), last h {h}", flush=True)
        results.append({"precision": prec, "updates_per_s": ups})
    with open(args.out, "w") as f:
        json.dump({"device": name, "torch": torch.__version__, "results": results}, f)


if __name__ == "__main__":
    main()
