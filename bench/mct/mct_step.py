#!/usr/bin/python3
"""The MCT step (DESIGN.md "The MCT step") in PyTorch, written independently of the Go code.

The one PyTorch implementation of the step; it serves three users:
  * the oracle test train.TestMCTStepMatchesPyTorch:
        mct_step.py oracle DIR...
    reads each DIR/spec.json and the .npy files the Go test wrote (initial weights, batches,
    and in sampled mode the Go-drawn pseudo-labels), runs the same updates in float32 and
    again in float64, and writes DIR/out.json and DIR/out64.json plus the final weights
    and BatchNorm statistics of every view (out_*.npy, out64_*.npy);
  * the CPU benchmark bench/mct (BenchmarkMCT):
        mct_step.py bench --batch 1024 --dims 784,324 --classes 10 --hidden 1024,1024,1024
  * the GPU baseline of bench/device-check.sh:
        mct_step.py bench --device cuda --precision fp32,bf16 --out torch.json ...
    bench times updates of the same step on random data, for each precision, and prints one
    JSON line per precision (and with --out writes them all to one file).

Precision, the PyTorch way: fp32 turns TF32 off (torch.backends.cuda.matmul.allow_tf32,
named fp32_precision since torch 2.9), tf32 turns it on, bf16 runs the probes' forwards
under torch.autocast (bfloat16 products and activations; fp32 weights, losses, gradients
and Adam) with TF32 off. On a CPU tf32 is fp32.

All views live in this process; the "all-gathers" are Python lists. Nothing in an update
waits for the device (no .item(), no host-side branch on a tensor): h stays a device
scalar, and the teacher step reads it there. Only the oracle reads values back, after
the update. The probe is functional (parameters passed in as a dict).

The teacher backward of step 5 runs at the pre-update weights θ_w, which the student
step then changes in place (autograd refuses a backward through tensors modified since).
With two views the teacher gradient of w is h_v/B · J_w^T (q_v − onehot(ŷ_v)) for the
one other view v: J_w^T (q_v − onehot(ŷ_v)) is back-propagated before the student step
and scaled by h once it is known (the backward is linear in its output gradient), which
needs no copy of the weights. With V > 2 views that would take V−1 backwards per view,
so the teacher pass runs on a detached copy of the weights (what Go keeps on its tape)
and back-propagates Σ_v h_v/(V−1)/B · (q_v − onehot(ŷ_v)) once after h: one backward for
any V at the price of a copy of the weights.
"""

import argparse
import json
import math
import os
import sys
import time
import warnings

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

    def init(self, gen, device):
        """PyTorch's default initialisation: Linear U(-1/sqrt(fan_in), 1/sqrt(fan_in)), BN 1, 0."""
        params, buffers = {}, {}
        for name, shape in self.shapes:
            if name.startswith("fc"):
                bound = 1 / np.sqrt(self.blocks[int(name[2:].split(".")[0])][1])
                params[name] = (torch.rand(shape, generator=gen, device=device) * 2 - 1) * bound
            else:
                params[name] = torch.full(shape, 1.0 if name.endswith("weight") else 0.0, device=device)
        for name, shape in self.buffer_shapes:
            buffers[name] = torch.full(shape, 0.0 if name.endswith("mean") else 1.0, device=device)
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
        # The fused CUDA Adam is what a GPU user picks for speed: one kernel for all
        # tensors, step counts on the device. The CPU has no fused Adam in torch 1.13.
        fused = self.params[self.names[0]].is_cuda
        self.opt = torch.optim.Adam(self.plist(), lr=lr, fused=fused)

    def plist(self):
        return [self.params[n] for n in self.names]


class MCT:
    """Meta Co-Training over V views in one process. amp: None, or the autocast dtype of
    the probes' forwards (torch.bfloat16)."""

    def __init__(self, views, lr, clip=1.0, pseudo_t=1.0, hard=False, exact_h=False, no_feedback=False,
                 amp=None):
        self.views, self.lr, self.clip = views, lr, clip
        self.pseudo_t, self.hard, self.exact_h = pseudo_t, hard, exact_h
        self.no_feedback, self.amp = no_feedback, amp

    def _forward(self, view, params, x):
        """Train-mode logits of x, in x's precision (autocast computes them in amp)."""
        if self.amp is None:
            return view.probe.forward(params, view.buffers, x)
        with torch.autocast(x.device.type, dtype=self.amp):
            z = view.probe.forward(params, view.buffers, x)
        return z.to(x.dtype)

    def _step(self, view, grads):
        """Clips grads to norm self.clip (in place) and takes view's Adam step with them."""
        for p, g in zip(view.plist(), grads):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(view.plist(), self.clip)
        view.opt.step()

    def update(self, U, X, y, yhat=None, gen=None):
        """One update of every view. U[v], X[v]: view v's unlabeled and labeled batch;
        y: labels of X; yhat: pseudo-labels per view (V tensors of B) or None to draw them
        with gen. Returns device tensors: h per view, its scale (what its rounding error is
        relative to), L_before and L_after per view, and the pseudo-labels used."""
        V, B = len(self.views), U[0].shape[0]
        C = self.views[0].probe.blocks[-1][2]
        feedback = not self.no_feedback
        # See the module comment: with V > 2 the teacher backward runs after h, on a copy.
        copy = feedback and V > 2
        # 1. Teacher pass.
        tparams, z = [], []
        for v, view in enumerate(self.views):
            p = view.params
            if copy:
                p = {n: t.detach().clone().requires_grad_(True) for n, t in p.items()}
            tparams.append([p[n] for n in view.names])
            z.append(self._forward(view, p, U[v]))
        zd = [t.detach() for t in z]  # the all-gathered logits
        # 2. Pseudo-labels of view w from the mean of the other views' logits.
        m = [sum(zd[o] * (1.0 / (V - 1)) for o in range(V) if o != w) for w in range(V)]
        if yhat is None:
            if self.hard:
                yhat = [mw.argmax(1) for mw in m]
            else:
                # Gumbel-max with torch's own generator (the Go side uses its counter RNG).
                yhat = [(mw / self.pseudo_t - torch.log(-torch.log(
                    torch.rand(mw.shape, generator=gen, device=mw.device).clamp_min(1e-20)))).argmax(1)
                        for mw in m]
        # The teacher directions: the gradient of CE(m_w/T, ŷ_w) with respect to m_w/T, times B.
        d = [torch.softmax(m[w] / self.pseudo_t, 1) - F.one_hot(yhat[w], C).to(zd[0].dtype)
             for w in range(V)] if feedback else None
        # 3.–4. Student step of every view, then L_after and g_sup on the same labeled batch.
        h, scale, before, after, gsup, gdir = [], [], [], [], [], []
        for v, view in enumerate(self.views):
            with torch.no_grad():
                lb = F.cross_entropy(self._forward(view, view.params, X[v]), y)
            gs = torch.autograd.grad(F.cross_entropy(z[v], yhat[v]), tparams[v], retain_graph=feedback)
            if feedback and not copy:  # V = 2: back-propagate the other view's direction now
                gdir.append(torch.autograd.grad(z[v], tparams[v], grad_outputs=d[1 - v]))
            self._step(view, gs)  # gs is now the clipped student gradient
            la = F.cross_entropy(self._forward(view, view.params, X[v]), y)
            g = torch.autograd.grad(la, view.plist())
            gsup.append(g)
            before.append(lb)
            after.append(la.detach())
            if self.exact_h:
                h.append(self.lr * sum(torch.dot(a.flatten().double(), b.flatten().double())
                                       for a, b in zip(g, gs)))
                # The size of the terms the dot product sums: its rounding error scales with it.
                scale.append(self.lr * _norm(g) * _norm(gs))
            else:
                h.append(lb - la.detach())
                scale.append(lb.abs())
        # 5. Teacher step: the others' feedback through this view's step-1 activations.
        # The weights h_w/(V−1)/B are rounded to the logits' precision, as the Go side does.
        k = [hw.to(zd[0].dtype) / (V - 1) / B for hw in h] if feedback else None
        for v, view in enumerate(self.views):
            grads = gsup[v]
            if feedback and not copy:
                grads = [a + k[1 - v] * b for a, b in zip(grads, gdir[v])]
            elif feedback:
                delta = sum(d[w] * k[w] for w in range(V) if w != v)
                gt = torch.autograd.grad(z[v], tparams[v], grad_outputs=delta)
                grads = [a + b for a, b in zip(grads, gt)]
            self._step(view, grads)
        return {"h": h, "h_scale": scale, "loss_before": before, "loss_after": after, "yhat": yhat}


def _norm(tensors):
    return torch.sqrt(sum((t.double() ** 2).sum() for t in tensors))


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
        for key, val in mct.update(U, X, y, yhat).items():
            out[key].append([t.tolist() for t in val])
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


PRECISIONS = ("fp32", "tf32", "bf16")


def set_tf32(on):
    """Lets fp32 matrix products on a GPU round their inputs to TF32 (tensor cores) or not:
    torch.backends.cuda.matmul.allow_tf32, which torch 2.9 renamed fp32_precision."""
    matmul = torch.backends.cuda.matmul
    if hasattr(torch.backends, "fp32_precision"):  # (matmul's own getattr raises AssertionError)
        matmul.fp32_precision = "tf32" if on else "ieee"
    else:
        matmul.allow_tf32 = on


def bench_one(a, device, precision):
    """Times a.updates updates (best of a.repeats runs, after a.warmup) of fresh views at
    precision; returns the result record."""
    set_tf32(precision == "tf32")
    gen = torch.Generator(device=device).manual_seed(a.seed)
    dims = [int(x) for x in a.dims.split(",")]
    hidden = [int(x) for x in a.hidden.split(",")]
    views = []
    for dim in dims:
        probe = Probe(a.arch, dim, a.classes, hidden)
        params, buffers = probe.init(gen, device)
        views.append(View(probe, params, buffers, a.lr))
    mct = MCT(views, a.lr, 1.0, 1.0, a.hard, a.exact_h, amp=torch.bfloat16 if precision == "bf16" else None)
    feats = [torch.randn(a.rows, dim, generator=gen, device=device) for dim in dims]
    labels = torch.randint(0, a.classes, (a.rows,), generator=gen, device=device)

    def one():
        u = torch.randint(0, a.rows, (a.batch,), generator=gen, device=device)
        l = torch.randint(0, a.rows, (a.labeled_batch,), generator=gen, device=device)
        return mct.update([f.index_select(0, u) for f in feats], [f.index_select(0, l) for f in feats],
                          labels.index_select(0, l), gen=gen)

    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(a.warmup):
        one()
    syncs = None
    if cuda:
        # One more untimed update under PyTorch's check for operations that make the host
        # wait for the GPU: the update should have none.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            one()
            torch.cuda.set_sync_debug_mode("default")
        syncs = sum("synchroniz" in str(w.message) for w in caught)
    best = float("inf")
    for _ in range(a.repeats):
        sync()
        t = time.perf_counter()
        for _ in range(a.updates):
            res = one()
        sync()
        best = min(best, (time.perf_counter() - t) / a.updates)
    rec = {"precision": precision, "updates_per_s": 1 / best, "seconds_per_update": best,
           "last_h": [float(x) for x in res["h"]]}
    if syncs is not None:
        rec["host_syncs_per_update"] = syncs
    return rec


def bench(a):
    if a.threads:
        torch.set_num_threads(a.threads)
    if min(a.updates, a.repeats, a.batch, a.labeled_batch, a.rows) < 1 or a.warmup < 0:
        raise SystemExit("mct_step.py bench: --updates, --repeats, --batch, --labeled-batch and --rows "
                         "must be at least 1, --warmup at least 0")
    precisions = a.precision.split(",")
    for p in precisions:
        if p not in PRECISIONS:
            raise SystemExit(f"mct_step.py bench: --precision {p}: want fp32, tf32 or bf16 (comma-separated)")
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("mct_step.py bench: --device cuda, but torch sees no GPU; use --device cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    common = {"device": name, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "blas": blas_library()}
    results = []
    for p in precisions:
        rec = bench_one(a, device, p)
        bad = [h for h in rec["last_h"] if not math.isfinite(h)]
        if bad:
            raise SystemExit(f"mct_step.py bench: {p}: h is {bad} after {a.updates} updates: the step diverged")
        results.append(rec)
        print(json.dumps({**rec, **common}), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({**common, "results": results}, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("oracle", help="run the updates a Go test wrote to each DIR")
    o.add_argument("dir", nargs="+")
    b = sub.add_parser("bench", help="time MCT updates on random data")
    b.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    b.add_argument("--precision", default="fp32", help="comma-separated: fp32, tf32, bf16")
    b.add_argument("--out", help="also write all precisions' results to this JSON file")
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
    b.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
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
