"""PyTorch oracle for nn's probe (run by oracle_test.go with /usr/bin/python3).

For each case directory named on the command line: read meta.json and the raw
little-endian float32 inputs written by the Go test, build the same probe with
torch.nn modules, load the same weights, and write what PyTorch computes: logits,
mean cross-entropy, parameter gradients, the clip_grad_norm_ total norm, the
parameters after one Adam step on the clipped gradients, the parameters after
meta["steps"] such updates, and the BN buffers at the end.
"""
import json
import os
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(f"cannot import torch: {e}")
    sys.exit(77)  # the Go test skips on this code only


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        data = bytearray(f.read())
    if not data:
        return torch.zeros(0)
    return torch.frombuffer(data, dtype=torch.float32)


def write(d, name, t):
    with open(os.path.join(d, name), "wb") as f:
        f.write(t.detach().to(torch.float32).contiguous().numpy().tobytes())


class Probe(nn.Module):
    """fcnn: h0 = BN0(LReLU(fc0 x)); h_i = BN_i(LReLU(fc_i [h0..h_{i-1}, h_{i-1}]));
    logits = LReLU(fc_last [h0..h_last, h_last]) / T (the reference, traced).
    mlp: h_i = LReLU(BN_i(fc_i h_{i-1})), fc_i without bias; logits = fc_L h / T.
    linear: fc0 x / T."""

    def __init__(self, m):
        super().__init__()
        self.arch, self.slope, self.t = m["arch"], m["slope"], m["temperature"]
        H, n_in, C = m["hidden"], m["in"], m["classes"]
        eps, mom = m["eps"], m["momentum"]
        if self.arch == "linear":
            self.fc0 = nn.Linear(n_in, C)
            self.depth = 0
        elif self.arch == "mlp":
            w = n_in
            for i, h in enumerate(H):
                setattr(self, f"fc{i}", nn.Linear(w, h, bias=False))
                setattr(self, f"bn{i}", nn.BatchNorm1d(h, eps=eps, momentum=mom))
                w = h
            setattr(self, f"fc{len(H)}", nn.Linear(w, C))
            self.depth = len(H)
        else:
            L = len(H)
            for i in range(L - 1):
                w = n_in if i == 0 else H[0] * (i + 1)
                setattr(self, f"fc{i}", nn.Linear(w, H[i]))
                setattr(self, f"bn{i}", nn.BatchNorm1d(H[i], eps=eps, momentum=mom))
            setattr(self, f"fc{L-1}", nn.Linear(H[0] * L, C))
            self.depth = L - 1

    def forward(self, x):
        lr = lambda v: F.leaky_relu(v, self.slope)
        if self.arch == "linear":
            return self.fc0(x) / self.t
        if self.arch == "mlp":
            h = x
            for i in range(self.depth):
                h = lr(getattr(self, f"bn{i}")(getattr(self, f"fc{i}")(h)))
            return getattr(self, f"fc{self.depth}")(h) / self.t
        hs = [getattr(self, "bn0")(lr(self.fc0(x)))]
        for i in range(1, self.depth):
            z = torch.cat(hs + [hs[-1]], dim=1)
            hs.append(getattr(self, f"bn{i}")(lr(getattr(self, f"fc{i}")(z))))
        z = torch.cat(hs + [hs[-1]], dim=1)
        return lr(getattr(self, f"fc{self.depth}")(z)) / self.t


def run(d):
    with open(os.path.join(d, "meta.json")) as f:
        m = json.load(f)
    model = Probe(m)
    sd = model.state_dict()
    flat, off = read(d, "params.f32"), 0
    bufs, boff = read(d, "buffers.f32"), 0
    new = {}
    for name, shape in m["params"]:
        n = 1
        for s in shape:
            n *= s
        new[name] = flat[off:off + n].reshape(shape).clone()
        off += n
    for name, shape in m["buffers"]:
        new[name] = bufs[boff:boff + shape[0]].clone()
        boff += shape[0]
    for k in sd:
        if k.endswith("num_batches_tracked"):
            new[k] = sd[k]
    assert list(sd.keys()) == [k for k in sd if k in new], "state_dict names differ"
    model.load_state_dict(new)
    names = [n for n, _ in model.named_parameters()]
    assert names == [n for n, _ in m["params"]], (names, m["params"])

    x = read(d, "x.f32").reshape(m["n"], m["in"])
    y = read(d, "y.f32").to(torch.int64)
    model.train(m["mode"] == "train")
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    write(d, "out_logits.f32", logits)
    write(d, "out_loss.f32", loss.reshape(1))
    write(d, "out_grads.f32", torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), m["clip"])
    write(d, "out_norm.f32", norm.reshape(1))
    opt = torch.optim.Adam(model.parameters(), lr=m["lr"], weight_decay=m["wd"])
    opt.step()
    write(d, "out_params.f32", torch.cat([p.reshape(-1) for p in model.parameters()]))
    # Further updates on the same batch: Adam's bias corrections and moments at
    # t > 1 and the running statistics over several Train forwards.
    for _ in range(m["steps"] - 1):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), m["clip"])
        opt.step()
    write(d, "out_params_final.f32", torch.cat([p.reshape(-1) for p in model.parameters()]))
    sd = model.state_dict()
    write(d, "out_buffers.f32", torch.cat([sd[n].reshape(-1) for n, _ in m["buffers"]] + [torch.zeros(0)]))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for d in sys.argv[1:]:
        run(d)
