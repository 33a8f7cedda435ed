package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// This file holds an independent float64 implementation of the probe, written from
// the architecture description (not from the block list of tape.go), used as the
// reference for forward values and, by central differences, for gradients.

type refModel struct {
	cfg Config
	p   map[string][]float64 // parameters by PyTorch name
	buf map[string][]float64 // running statistics by name
}

func refLinear(x []float64, n, in int, w, b []float64, out int) []float64 {
	y := make([]float64, n*out)
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			var s float64
			if b != nil { // a Linear without bias (mlp hidden layers)
				s = b[o]
			}
			for i := 0; i < in; i++ {
				s += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func refLReLU(x []float64, slope float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v
		if v <= 0 {
			y[i] = slope * v
		}
	}
	return y
}

// refBN normalises with two-pass batch moments (train) or the running statistics
// (eval); in train mode it returns the updated running statistics too.
func refBN(x []float64, n, cols int, g, b, rm, rv []float64, eps, mom float64, train bool) (y, nrm, nrv []float64) {
	y = make([]float64, n*cols)
	nrm, nrv = append([]float64(nil), rm...), append([]float64(nil), rv...)
	for j := 0; j < cols; j++ {
		mean, vr := rm[j], rv[j]
		if train {
			mean = 0
			for r := 0; r < n; r++ {
				mean += x[r*cols+j]
			}
			mean /= float64(n)
			vr = 0
			for r := 0; r < n; r++ {
				d := x[r*cols+j] - mean
				vr += d * d
			}
			vr /= float64(n)
			nrm[j] = (1-mom)*rm[j] + mom*mean
			nrv[j] = (1-mom)*rv[j] + mom*vr*float64(n)/float64(n-1)
		}
		for r := 0; r < n; r++ {
			y[r*cols+j] = (x[r*cols+j]-mean)/math.Sqrt(vr+eps)*g[j] + b[j]
		}
	}
	return y, nrm, nrv
}

// refConcat joins row-major matrices with the given column counts.
func refConcat(n int, mats [][]float64, cols []int) ([]float64, int) {
	tot := 0
	for _, c := range cols {
		tot += c
	}
	y := make([]float64, 0, n*tot)
	for r := 0; r < n; r++ {
		for k, m := range mats {
			y = append(y, m[r*cols[k]:(r+1)*cols[k]]...)
		}
	}
	return y, tot
}

// forward returns the logits and, in train mode, the running statistics after it.
// masks[i] (if present) multiplies hidden block i's output, as dropout does.
func (m *refModel) forward(x []float64, n int, train bool, masks map[int][]float64) ([]float64, map[string][]float64) {
	c := m.cfg
	slope, eps, mom := float64(c.Slope), float64(c.BNEps), float64(c.BNMomentum)
	newBuf := map[string][]float64{}
	bn := func(i int, a []float64, cols int) []float64 {
		k := fmt.Sprintf("bn%d.", i)
		y, rm, rv := refBN(a, n, cols, m.p[k+"weight"], m.p[k+"bias"], m.buf[k+"running_mean"], m.buf[k+"running_var"], eps, mom, train)
		newBuf[k+"running_mean"], newBuf[k+"running_var"] = rm, rv
		return y
	}
	drop := func(i int, h []float64) []float64 {
		if mk, ok := masks[i]; ok && train {
			for j := range h {
				h[j] *= mk[j]
			}
		}
		return h
	}
	fc := func(i int, x []float64, in, out int) []float64 {
		k := fmt.Sprintf("fc%d.", i)
		return refLinear(x, n, in, m.p[k+"weight"], m.p[k+"bias"], out)
	}
	var logits []float64
	switch c.Arch {
	case "linear":
		logits = fc(0, x, c.In, c.Classes)
	case "mlp":
		h, w := x, c.In
		for i, hw := range c.Hidden {
			h = drop(i, refLReLU(bn(i, fc(i, h, w, hw), hw), slope))
			w = hw
		}
		logits = fc(len(c.Hidden), h, w, c.Classes)
	case "fcnn":
		H, L := c.Hidden[0], len(c.Hidden)
		hs := [][]float64{drop(0, bn(0, refLReLU(fc(0, x, c.In, H), slope), H))}
		skip := func() ([]float64, int) { // [h0, …, h_last, h_last]
			mats := append(append([][]float64{}, hs...), hs[len(hs)-1])
			cols := make([]int, len(mats))
			for k := range cols {
				cols[k] = H
			}
			return refConcat(n, mats, cols)
		}
		for i := 1; i < L-1; i++ {
			in, w := skip()
			hs = append(hs, drop(i, bn(i, refLReLU(fc(i, in, w, H), slope), H)))
		}
		in, w := skip()
		logits = refLReLU(fc(L-1, in, w, c.Classes), slope)
	}
	for i := range logits {
		logits[i] /= float64(c.Temperature)
	}
	return logits, newBuf
}

// refCE is the mean softmax cross-entropy and its gradient w.r.t. the logits.
func refCE(logits []float64, labels []int, classes int) (float64, []float64) {
	n := len(labels)
	d := make([]float64, len(logits))
	var loss float64
	for r := 0; r < n; r++ {
		row := logits[r*classes : (r+1)*classes]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		lse := mx + math.Log(s)
		loss += lse - row[labels[r]]
		for c, v := range row {
			d[r*classes+c] = math.Exp(v-lse) / float64(n)
		}
		d[r*classes+labels[r]] -= 1 / float64(n)
	}
	return loss / float64(n), d
}

// refFromProbe copies a probe's current parameters and buffers to float64 maps.
func refFromProbe(p *Probe) *refModel {
	m := &refModel{cfg: p.cfg, p: map[string][]float64{}, buf: map[string][]float64{}}
	for _, q := range p.Params() {
		m.p[q.Name] = download64(p.b, q.W)
	}
	for _, q := range p.Buffers() {
		m.buf[q.Name] = download64(p.b, q.W)
	}
	return m
}

func download64(b Backend, x Buf) []float64 {
	h := make([]float32, x.Len())
	b.Download(h, x)
	out := make([]float64, len(h))
	for i, v := range h {
		out[i] = float64(v)
	}
	return out
}

func to32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func randNormal(rng *rand.Rand, n int, scale float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = scale * rng.NormFloat64()
	}
	return x
}

// closeTo reports the worst violation of |got−want| ≤ atol + rtol·|want|.
func closeTo(t *testing.T, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, wi := 0.0, -1
	for i := range got {
		e := math.Abs(float64(got[i])-want[i]) - (atol + rtol*math.Abs(want[i]))
		if e > worst || math.IsNaN(float64(got[i])) {
			worst, wi = e, i
			if math.IsNaN(float64(got[i])) {
				worst = math.Inf(1)
			}
		}
	}
	if wi >= 0 {
		t.Errorf("%s[%d] = %.8g, want %.8g (tolerance %.1e + %.1e·|want|)", what, wi, got[wi], want[wi], atol, rtol)
	}
}
