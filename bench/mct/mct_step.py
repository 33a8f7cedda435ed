#!/usr/bin/python3
"""The MCT step (DESIGN.md "The MCT step") in PyTorch, written independently of the Go code.

One file serves two users:
  * the oracle test train.TestMCTStepMatchesPyTorch:
        mct_step.py oracle DIR...
    reads each DIR/spec.json and the .npy files the Go test wrote (initial weights, batches,
    and in sampled mode the Go-drawn pseudo-labels), runs the same updates in float32 and
    again in float64, and writes DIR/out.json and DIR/out64.json plus the final weights
    and BatchNorm statistics of every view (out_*.npy, out64_*.npy);
  * the benchmark bench/mct (BenchmarkMCT):
        mct_step.py bench --batch 1024 --dims 784,324 --classes 10 --hidden 1024,1024,1024
    times updates of the same step on random data and prints one JSON line.

All views live in this process; the "all-gathers" are Python lists. The probe is
functional (parameters passed in), so the teacher backward of step 5 can differentiate
at the pre-update weights: the teacher pass runs on a detached copy of the parameters
(what Go keeps on its tape), the optimizer updates the real ones.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


class Probe:
    """The per-view MLP, as described in nn.Probe's comment (fcnn, mlp, linear).

    fcnn: h0 = BN0(LReLU(fc0 x)); h_i = BN_i(LReLU(fc_i [h0..h_{i-1}, h_{i-1}]));
          logits = LReLU(fc_L [h0..h_{L-1}, h_{L-1}]) / T
    mlp:  h_i = LReLU(BN_i(fc_i h_{i-1})), fc_i without bias; logits = fc_L h_{L-1} / T
    linear: logits = fc0 x / T
    Parameters are named and ordered as a PyTorch state_dict: fc0.weight, fc0.bias,
    bn0.weight, bn0.bias, fc1.weight, ...
    """

    def __init__(self, arch, n_in, classes, hidden, slope=0.01, temperature=1.0,
                 bn_momentum=0.1, bn_eps=1e-5):
        self.arch, self.slope, self.temperature = arch, slope, temperature
        self.bn_momentum, self.bn_eps = bn_momentum, bn_eps
        n_hidden = {"fcnn": len(hidden) - 1, "mlp": len(hidden), "linear": 0}[arch]
        self.blocks = []  # (sources, in width, out width, final)
        widths = []
        for i in range(n_hidden + 1):
            if i == 0:
                src = [-1]
            elif arch == "fcnn":
                src = list(range(i)) + [i - 1]
            else:
                src = [i - 1]
            w_in = sum(n_in if s < 0 else widths[s] for s in src)
            final = i == n_hidden
            out = classes if final else hidden[i]
            widths.append(out)
            self.blocks.append((src, w_in, out, final))
        self.shapes = []  # (name, shape) in state_dict order
        self.buffer_shapes = []
        for i, (_, w_in, out, final) in enumerate(self.blocks):
            self.shapes += [(f"fc{i}.weight", (out, w_in))]
            if arch != "mlp" or final:  # BN removes an mlp hidden layer's bias: none
                self.shapes += [(f"fc{i}.bias", (out,))]
            if not final:
                self.shapes += [(f"bn{i}.weight", (out,)), (f"bn{i}.bias", (out,))]
                self.buffer_shapes += [(f"bn{i}.running_mean", (out,)), (f"bn{i}.running_var", (out,))]

    def init(self, gen):
        """PyTorch's default initialisation: Linear U(-1/sqrt(fan_in), 1/sqrt(fan_in)), BN 1, 0."""
        params, buffers = {}, {}
        for name, shape in self.shapes:
            if name.startswith("fc"):
                bound = 1 / np.sqrt(self.blocks[int(name[2:].split(".")[0])][1])
                params[name] = (torch.rand(shape, generator=gen) * 2 - 1) * bound
            else:
                params[name] = torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)
        for name, shape in self.buffer_shapes:
            buffers[name] = torch.zeros(shape) if name.endswith("mean") else torch.ones(shape)
        return params, buffers

    def forward(self, params, buffers, x, train=True):
        """Logits of x; in train mode BatchNorm uses batch moments and updates buffers in place."""
        hs = []
        for i, (src, _, _, final) in enumerate(self.blocks):
            inp = x if src == [-1] else torch.cat([hs[s] for s in src], 1)
            a = F.linear(inp, params[f"fc{i}.weight"], params.get(f"fc{i}.bias"))
            if self.arch == "fcnn":
                a = F.leaky_relu(a, self.slope)
            if final:
                return a / self.temperature if self.temperature != 1 else a
            a = F.batch_norm(a, buffers[f"bn{i}.running_mean"], buffers[f"bn{i}.running_var"],
                             params[f"bn{i}.weight"], params[f"bn{i}.bias"], training=train,
                             momentum=self.bn_momentum, eps=self.bn_eps)
            if self.arch == "mlp":
                a = F.leaky_relu(a, self.slope)
            hs.append(a)
        raise AssertionError("probe without a final block")


class View:
    """One view's probe, its weights (leaf tensors), BN statistics and Adam."""

    def __init__(self, probe, params, buffers, lr):
        self.probe = probe
        self.names = [n for n, _ in probe.shapes]
        self.params = {n: params[n].clone().requires_grad_(True) for n in self.names}
        self.buffers = {n: buffers[n].clone() for n, _ in probe.buffer_shapes}
        self.opt = torch.optim.Adam(list(self.params.values()), lr=lr)

    def plist(self):
        return [self.params[n] for n in self.names]


class MCT:
    """Meta Co-Training over V views in one process."""

    def __init__(self, views, lr, clip=1.0, pseudo_t=1.0, hard=False, exact_h=False, no_feedback=False):
        self.views, self.lr, self.clip = views, lr, clip
        self.pseudo_t, self.hard, self.exact_h = pseudo_t, hard, exact_h
        self.no_feedback = no_feedback

    def _step(self, view, grads):
        for p, g in zip(view.plist(), grads):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(view.plist(), self.clip)
        clipped = [p.grad.clone() for p in view.plist()] if self.exact_h else None
        view.opt.step()
        return clipped

    def update(self, U, X, y, yhat=None, gen=None):
        """One update of every view. U[v], X[v]: view v's unlabeled and labeled batch;
        y: labels of X; yhat: pseudo-labels per view (V×B) or None to draw them.
        Returns h, its scale (what its rounding error is relative to), L_before and
        L_after per view, and the pseudo-labels used."""
        V, B = len(self.views), U[0].shape[0]
        # 1. Teacher pass at a copy of the weights (kept for the step-5 backward).
        snaps, z = [], []
        for v, view in enumerate(self.views):
            snap = {n: p.detach().clone().requires_grad_(True) for n, p in view.params.items()}
            snaps.append(snap)
            z.append(view.probe.forward(snap, view.buffers, U[v], train=True))
        zd = [t.detach() for t in z]  # the all-gathered logits
        # 2. Pseudo-labels of view w from the mean of the other views' logits.
        m = []
        for w in range(V):
            acc = torch.zeros_like(zd[0])
            for o in range(V):
                if o != w:
                    acc = acc + zd[o] * (1.0 / (V - 1))
            m.append(acc)
        if yhat is None:
            if self.hard:
                yhat = [mw.argmax(1) for mw in m]
            else:
                # Gumbel-max with torch's own generator (the Go side uses its counter RNG).
                yhat = [(mw / self.pseudo_t - torch.log(-torch.log(
                    torch.rand(mw.shape, generator=gen).clamp_min(1e-20)))).argmax(1) for mw in m]
        # 3.–4. Student step of every view, then L_after and g_sup on the same labeled batch.
        h, before, after, gsup, scale = [], [], [], [], []
        for v, view in enumerate(self.views):
            with torch.no_grad():
                lb = F.cross_entropy(view.probe.forward(view.params, view.buffers, X[v]), y).item()
            snap = [snaps[v][n] for n in view.names]
            gs = torch.autograd.grad(F.cross_entropy(z[v], yhat[v]), snap, retain_graph=True)
            clipped = self._step(view, gs)
            la = F.cross_entropy(view.probe.forward(view.params, view.buffers, X[v]), y)
            g = torch.autograd.grad(la, view.plist())
            gsup.append(g)
            before.append(lb)
            after.append(la.item())
            if self.exact_h:
                h.append(self.lr * sum(float(torch.dot(a.flatten().double(), b.flatten().double()))
                                       for a, b in zip(g, clipped)))
                # The size of the terms the dot product sums: its rounding error scales with it.
                scale.append(self.lr * _norm(g) * _norm(clipped))
            else:
                h.append(lb - la.item())
                scale.append(abs(lb))
        # 5. Teacher step: the others' feedback through this view's step-1 activations.
        q = [torch.softmax(mw / self.pseudo_t, 1) for mw in m]
        for v, view in enumerate(self.views):
            delta = torch.zeros_like(zd[0])
            for w in range(V):
                if w != v and not self.no_feedback:
                    onehot = F.one_hot(yhat[w], zd[0].shape[1]).to(delta.dtype)
                    # The scale rounded to the logits' precision, as the Go side does.
                    k = torch.tensor(h[w], dtype=delta.dtype) / (V - 1) / B
                    delta = delta + (q[w] - onehot) * k
            snap = [snaps[v][n] for n in view.names]
            gt = torch.autograd.grad(z[v], snap, grad_outputs=delta)
            self._step(view, [a + b for a, b in zip(gsup[v], gt)])
        return {"h": h, "h_scale": scale, "loss_before": before, "loss_after": after,
                "yhat": [t.tolist() for t in yhat]}


def _norm(tensors):
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)))


def load_flat(path, shapes, dtype):
    flat = torch.from_numpy(np.load(path)).to(dtype)
    out, off = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        out[name] = flat[off:off + n].reshape(shape)
        off += n
    if off != flat.numel():
        raise SystemExit(f"{path}: {flat.numel()} values, the probe needs {off}")
    return out


def save_flat(path, tensors, names):
    np.save(path, np.concatenate([tensors[n].detach().numpy().ravel() for n in names]))


def oracle(d, dtype, prefix):
    """Runs the updates of DIR in dtype; outputs are named with prefix (out, out64)."""
    with open(os.path.join(d, "spec.json")) as f:
        spec = json.load(f)
    views = []
    for v, vs in enumerate(spec["views"]):
        probe = Probe(spec["arch"], vs["in"], spec["classes"], spec["hidden"], spec["slope"],
                      spec["temperature"], spec["bn_momentum"], spec["bn_eps"])
        params = load_flat(os.path.join(d, f"params_v{v}.npy"), probe.shapes, dtype)
        buffers = load_flat(os.path.join(d, f"buffers_v{v}.npy"), probe.buffer_shapes, dtype)
        views.append(View(probe, params, buffers, spec["mct_lr"]))
    mct = MCT(views, spec["mct_lr"], spec["clip"], spec["pseudo_t"], spec["hard"], spec["exact_h"],
              spec.get("no_feedback", False))
    out = {"h": [], "h_scale": [], "loss_before": [], "loss_after": [], "yhat": []}
    for s in range(spec["steps"]):
        ld = lambda name: torch.from_numpy(np.load(os.path.join(d, name)))
        U = [ld(f"u{s}_v{v}.npy").to(dtype) for v in range(len(views))]
        X = [ld(f"x{s}_v{v}.npy").to(dtype) for v in range(len(views))]
        y = ld(f"y{s}.npy")
        yhat = None
        if not spec["hard"]:
            yhat = list(ld(f"yhat{s}.npy"))
        for k, val in mct.update(U, X, y, yhat).items():
            out[k].append(val)
    for v, view in enumerate(views):
        save_flat(os.path.join(d, f"{prefix}_params_v{v}.npy"), view.params, view.names)
        save_flat(os.path.join(d, f"{prefix}_buffers_v{v}.npy"), view.buffers, [n for n, _ in view.probe.buffer_shapes])
    with open(os.path.join(d, f"{prefix}.json"), "w") as f:
        json.dump(out, f)


def blas_library():
    """What torch's matrix products run on: the BLAS shared objects this process mapped
    (Debian's torch calls whatever libblas.so.3 is) and the BLAS_INFO torch was built
    with (pip wheels link MKL in statically, so nothing is mapped for it)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    info = [f.split("=", 1)[1] for f in torch.__config__.show().replace(",", " ").split() if f.startswith("BLAS_INFO=")]
    return sorted(os.path.realpath(p) for p in libs) + [f"BLAS_INFO={i}" for i in info]


def bench(a):
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(a.seed)
    dims = [int(x) for x in a.dims.split(",")]
    hidden = [int(x) for x in a.hidden.split(",")]
    views = []
    for d in dims:
        probe = Probe(a.arch, d, a.classes, hidden)
        params, buffers = probe.init(gen)
        views.append(View(probe, params, buffers, a.lr))
    mct = MCT(views, a.lr, 1.0, 1.0, a.hard, a.exact_h)
    feats = [torch.randn(a.rows, d, generator=gen) for d in dims]
    labels = torch.randint(0, a.classes, (a.rows,), generator=gen)

    def one():
        u = torch.randint(0, a.rows, (a.batch,), generator=gen)
        l = torch.randint(0, a.rows, (a.labeled_batch,), generator=gen)
        mct.update([f.index_select(0, u) for f in feats], [f.index_select(0, l) for f in feats],
                   labels.index_select(0, l), gen=gen)

    for _ in range(a.warmup):
        one()
    best = float("inf")
    for _ in range(a.repeats):
        t = time.perf_counter()
        for _ in range(a.updates):
            one()
        best = min(best, (time.perf_counter() - t) / a.updates)
    print(json.dumps({"updates_per_s": 1 / best, "seconds_per_update": best, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "blas": blas_library()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("oracle", help="run the updates a Go test wrote to each DIR")
    o.add_argument("dir", nargs="+")
    b = sub.add_parser("bench", help="time MCT updates on random data")
    b.add_argument("--batch", type=int, default=1024)
    b.add_argument("--labeled-batch", type=int, default=1024)
    b.add_argument("--dims", default="784,324")
    b.add_argument("--classes", type=int, default=10)
    b.add_argument("--hidden", default="1024,1024,1024")
    b.add_argument("--arch", default="fcnn")
    b.add_argument("--rows", type=int, default=8192, help="rows of the random feature matrices")
    b.add_argument("--lr", type=float, default=1e-4 / 8)
    b.add_argument("--hard", action="store_true")
    b.add_argument("--exact-h", action="store_true")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--updates", type=int, default=5)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "oracle":
        torch.set_num_threads(1)
        for d in a.dir:
            oracle(d, torch.float32, "out")
            oracle(d, torch.float64, "out64")
    else:
        bench(a)


if __name__ == "__main__":
    sys.exit(main())
