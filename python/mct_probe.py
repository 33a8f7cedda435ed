"""A probe trained by mct, in PyTorch: load it and run it on your own features.

    import sys, torch; sys.path.insert(0, "python"); import mct_probe   # from the repository root
    probe = mct_probe.load("runs/x/model-dino.safetensors")  # or a file from mct export
    logits = probe(torch.from_numpy(features))               # features: N x In, any float type

or from the shell, on the features exactly as they were given to `mct data import`:

    python3 python/mct_probe.py runs/x/model-dino.safetensors test_dino.npy --classes pred.npy

The file holds the weights and BatchNorm statistics under PyTorch state_dict names, the
architecture (metadata "mct_probe": arch, widths, LeakyReLU slope, temperature, BN eps)
and, for a view mct standardised, the column mean and std it removed from the raw
features (input.mean, input.std): load() puts them in front of the probe, so the probe
takes raw features. The probe comes in eval mode (BatchNorm uses its running
statistics), as mct evaluates it. Needs torch and numpy only (not the safetensors
package).
"""

import argparse
import json
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # a venv or pyenv without them: say what to install, not a traceback
    _missing = (f"mct_probe.py: {e}: it needs torch and numpy (pip install torch numpy, "
                f"or Debian's apt-get install python3-torch and /usr/bin/python3)")
    if __name__ == "__main__":
        sys.exit(_missing)
    raise ImportError(_missing) from e  # imported: an exception the importer can catch, not an exit


class Standardize(torch.nn.Module):
    """(x - mean) / std per column: what mct removed from the raw features."""

    def __init__(self, n_in):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))

    def forward(self, x):
        return (x - self.mean) / self.std


class MCTProbe(torch.nn.Module):
    """mct's per-view probe (nn.Probe in mct):

    fcnn:   h0 = BN0(LReLU(fc0 x)); h_i = BN_i(LReLU(fc_i [h0, ..., h_{i-1}, h_{i-1}]));
            logits = LReLU(fc_L [h0, ..., h_{L-1}, h_{L-1}]) / T   (the reference's network)
    mlp:    h_i = LReLU(BN_i(fc_i h_{i-1})), hidden fc_i without bias; logits = fc_L h_{L-1} / T
    linear: logits = fc0 x / T
    """

    def __init__(self, arch, n_in, classes, hidden, slope=0.01, temperature=1.0,
                 bn_momentum=0.1, bn_eps=1e-5, standardize=False):
        super().__init__()
        if arch not in ("fcnn", "mlp", "linear"):
            raise ValueError(f"arch {arch!r}: want fcnn, mlp or linear")
        self.arch, self.slope, self.temperature, self.n_in = arch, slope, temperature, n_in
        self.input = Standardize(n_in) if standardize else None
        n_hidden = {"fcnn": len(hidden) - 1, "mlp": len(hidden), "linear": 0}[arch]
        self.sources, widths = [], []
        for i in range(n_hidden + 1):
            if i == 0:
                src = [-1]  # the input
            elif arch == "fcnn":
                src = list(range(i)) + [i - 1]  # every earlier block, the last one twice
            else:
                src = [i - 1]
            final = i == n_hidden
            width_in = sum(n_in if s < 0 else widths[s] for s in src)
            width_out = classes if final else hidden[i]
            widths.append(width_out)
            self.sources.append(src)
            bias = arch != "mlp" or final  # BatchNorm removes an mlp hidden layer's bias
            self.add_module(f"fc{i}", torch.nn.Linear(width_in, width_out, bias=bias))
            if not final:
                self.add_module(f"bn{i}", torch.nn.BatchNorm1d(width_out, eps=bn_eps, momentum=bn_momentum))

    def forward(self, x):
        # Features of another view (or a 1-D array) would otherwise fail deep inside with a
        # broadcasting message that names neither the probe nor the expected width.
        if x.dim() != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"features of shape {tuple(x.shape)}: this probe takes N x {self.n_in} "
                             f"(the view it was trained on, raw as given to mct data import)")
        # NumPy's float64 (or float16) features would otherwise fail in the first Linear.
        x = x.to(self.fc0.weight.dtype)
        if self.input is not None:
            x = self.input(x)
        hs, last = [], len(self.sources) - 1
        for i, src in enumerate(self.sources):
            a = getattr(self, f"fc{i}")(x if src == [-1] else torch.cat([hs[s] for s in src], 1))
            if self.arch == "fcnn":
                a = F.leaky_relu(a, self.slope)
            if i == last:
                return a / self.temperature
            a = getattr(self, f"bn{i}")(a)
            if self.arch == "mlp":
                a = F.leaky_relu(a, self.slope)
            hs.append(a)


def read_safetensors(path):
    """The tensors (float32, by name) and the metadata of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0] if len(blob) >= 8 else 0
    try:
        header = json.loads(blob[8:8 + n]) if 2 <= n <= len(blob) - 8 else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file: give a run's model-VIEW.safetensors or a file from mct export")
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {t['dtype']}, mct writes F32")
        lo, hi = t["data_offsets"]
        a = np.frombuffer(blob, dtype="<f4", count=(hi - lo) // 4, offset=8 + n + lo)
        tensors[name] = torch.from_numpy(a.reshape(t["shape"]).copy())
    return tensors, meta


def load(path):
    """The probe in path, in eval mode, taking raw features when the file has input.*."""
    tensors, meta = read_safetensors(path)
    if "mct_probe" not in meta:
        raise ValueError(f"{path}: no mct_probe metadata: not a probe written by mct")
    c = json.loads(meta["mct_probe"])
    probe = MCTProbe(c["Arch"], c["In"], c["Classes"], c["Hidden"], c["Slope"], c["Temperature"],
                     c["BNMomentum"], c["BNEps"], standardize="input.mean" in tensors)
    missing, unexpected = probe.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # mct keeps no count
    if missing or unexpected:
        raise ValueError(f"{path}: tensors missing {missing}, unexpected {unexpected}")
    return probe.eval()


def main():
    p = argparse.ArgumentParser(description="Run a probe trained by mct on features from a NumPy file.")
    p.add_argument("model", help="model-VIEW.safetensors of a run, or a file from mct export")
    p.add_argument("features", help="N x In float features (.npy), raw as given to mct data import")
    p.add_argument("--logits", help="write the N x Classes logits here (.npy, float32)")
    p.add_argument("--classes", help="write the N predicted classes here (.npy, int64)")
    a = p.parse_args()
    if a.features.endswith(".zst"):  # mct reads .npy.zst; NumPy does not
        p.error(f"{a.features} is zstd-compressed: decompress it first (zstd -d {a.features})")
    # A wrong file is one line naming it, as mct's own errors are, not a traceback.
    try:
        probe = load(a.model)
    except OSError as e:
        sys.exit(f"mct_probe.py: {a.model}: {e.strerror or e}")
    except ValueError as e:
        sys.exit(f"mct_probe.py: {e}")
    try:
        x = torch.from_numpy(np.load(a.features).astype(np.float32, copy=False))
    except OSError as e:
        sys.exit(f"mct_probe.py: {a.features}: {e.strerror or e}")
    except ValueError as e:  # NumPy's message for a file that is not .npy speaks of pickles
        sys.exit(f"mct_probe.py: {a.features}: not a NumPy .npy file of features ({e})")
    try:
        with torch.no_grad():
            z = probe(x)
    except ValueError as e:
        sys.exit(f"mct_probe.py: {a.features}: {e}")
    if a.logits:
        np.save(a.logits, z.numpy())
    if a.classes:
        np.save(a.classes, z.argmax(1).numpy().astype(np.int64))
    counts = np.bincount(z.argmax(1).numpy(), minlength=z.shape[1])
    print(f"{a.model}: {z.shape[0]} rows; predicted classes (count per class): {counts.tolist()}", file=sys.stderr)


if __name__ == "__main__":
    main()
