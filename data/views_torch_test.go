package data

import (
	"context"
	"math"
	"path/filepath"
	"testing"
)

// TestViewsMatchTorch recomputes the gabor and randconv views of 16 real
// Fashion-MNIST images with PyTorch's conv2d (2-D kernels built from our filter
// banks, pooling by avg_pool2d) and compares them with ours element by element.
// It catches indexing, padding, sampling-grid and pooling-layout mistakes that a
// probe accuracy would hide.
func TestViewsMatchTorch(t *testing.T) {
	raw := realFashionMNIST(t)
	im := firstImages(raw.test, 16)
	dir := t.TempDir()
	save := func(name string, a *Array) {
		if err := WriteNPY(filepath.Join(dir, name), a); err != nil {
			t.Fatal(err)
		}
	}
	save("images.npy", &Array{Shape: []int{16, 28, 28}, Dtype: Uint8, Raw: im.Pix})
	bank := makeGaborBank(3, 6)
	for s := 0; s < 3; s++ {
		var rows []float32
		for o := 0; o < 6; o++ {
			g := bank[s*6+o]
			for _, part := range [][]float64{g.rowRe, g.rowIm, g.colRe, g.colIm} {
				for _, v := range part {
					rows = append(rows, float32(v))
				}
			}
		}
		save("gabor"+string(rune('0'+s))+".npy", NewFloat32([]int{6, 4, len(bank[s*6].rowRe)}, rows))
	}
	save("randconv_w.npy", NewFloat32([]int{32, 5, 5}, randomFilters(32, 25, 1)))
	runPython(t, dir, `
import numpy as np, torch
import torch.nn.functional as F
torch.set_num_threads(1)
x = torch.tensor(np.load("images.npy"), dtype=torch.float64).unsqueeze(1) / 255
feats = []
for s in range(3):
    b = torch.tensor(np.load("gabor%d.npy" % s), dtype=torch.float64)  # orient, [rowRe,rowIm,colRe,colIm], taps
    row = torch.complex(b[:, 0], b[:, 1]); col = torch.complex(b[:, 2], b[:, 3])
    k = col[:, :, None] * row[:, None, :]  # orient, v, u
    h = k.shape[-1] // 2
    re = F.conv2d(x, k.real.unsqueeze(1), padding=h); im = F.conv2d(x, k.imag.unsqueeze(1), padding=h)
    mag = torch.sqrt(re**2 + im**2)[:, :, 1::2, 1::2]  # sampled at pixels 1, 3, ..., 27
    feats.append(F.avg_pool2d(mag, 2).reshape(16, -1))
np.save("gabor_ref.npy", torch.cat(feats, 1).numpy().astype("<f4"))
w = torch.tensor(np.load("randconv_w.npy"), dtype=torch.float64).unsqueeze(1)
r = F.conv2d(x, w)
pos = F.avg_pool2d(F.relu(r), 6); neg = F.avg_pool2d(F.relu(-r), 6)
np.save("randconv_ref.npy", torch.stack([pos, neg], 2).reshape(16, -1).numpy().astype("<f4"))
`)
	for _, spec := range []string{"gabor", "randconv"} {
		f, args, _ := lookupFamily(spec)
		got, err := f(context.Background(), args, im, nil)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := ReadNPY(filepath.Join(dir, spec+"_ref.npy"))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ref.Float32s()
		if len(want) != len(got.Data) {
			t.Fatalf("%s: torch gives %d values, we give %d", spec, len(want), len(got.Data))
		}
		var maxErr, maxVal float64
		for i := range want {
			maxErr = math.Max(maxErr, math.Abs(float64(got.Data[i]-want[i])))
			maxVal = math.Max(maxVal, math.Abs(float64(want[i])))
		}
		t.Logf("%s: max |ours - torch| = %.2g (values up to %.3g)", spec, maxErr, maxVal)
		if maxErr > 1e-5*maxVal {
			t.Errorf("%s differs from the PyTorch recomputation by %.3g", spec, maxErr)
		}
	}
}
