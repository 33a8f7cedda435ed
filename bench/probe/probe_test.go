package probe

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"mct/blas"
	"mct/nn"
)

const (
	batch   = 1024
	classes = 10
	// torchPython is Debian's interpreter, the one python3-torch is installed for.
	torchPython = "/usr/bin/python3"
)

// update is one probe update on a fixed batch.
type update struct {
	p    *nn.Probe
	tape *nn.Tape
	g    *nn.Grads
	opt  *nn.Adam
	x, y nn.Buf
	dl   nn.Buf
	ce   *nn.Loss
	b    nn.Backend
	nIn  int
	loss float32
}

func newUpdate(b nn.Backend, nIn int) (*update, error) {
	p, err := nn.NewProbe(b, nn.Config{Arch: "fcnn", In: nIn, Classes: classes}, 1)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	xs, ys := make([]float32, batch*nIn), make([]float32, batch)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	for i := range ys {
		ys[i] = float32(rng.IntN(classes))
	}
	u := &update{p: p, tape: p.NewTape(batch, false), g: p.NewGrads(), opt: nn.NewAdam(p, 1e-4),
		x: b.Alloc(len(xs)), y: b.Alloc(batch), dl: b.Alloc(batch * classes), ce: nn.NewLoss(b, batch), b: b, nIn: nIn}
	b.Upload(u.x, xs)
	b.Upload(u.y, ys)
	return u, nil
}

func (u *update) step() {
	u.g.Zero()
	logits := u.p.Forward(u.tape, u.x, batch, nn.Train)
	u.loss = u.ce.CrossEntropy(logits, batch, classes, u.y, u.dl, 1)
	u.p.Backward(u.tape, u.dl, u.g)
	u.opt.Step(u.g)
	u.b.Sync()
}

// torchUpdate runs torch_update.py and returns its ms/update and BLAS library.
func torchUpdate(nIn, iters, threads int) (float64, string, error) {
	out, err := exec.Command(torchPython, "torch_update.py", strconv.Itoa(nIn), strconv.Itoa(batch),
		strconv.Itoa(iters), strconv.Itoa(threads)).CombinedOutput()
	if err != nil {
		return 0, "", fmt.Errorf("%v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 5 || f[0] != "torch" {
		return 0, "", fmt.Errorf("unexpected output %q", out)
	}
	ms, err := strconv.ParseFloat(f[2], 64)
	return ms, f[4], err
}

// BenchmarkUpdate times the Go update and, in the same run, PyTorch's, for both
// input widths of the brief (784 = raw Fashion-MNIST pixels, 324 = a HOG view).
func BenchmarkUpdate(b *testing.B) {
	threads := runtime.GOMAXPROCS(0)
	for _, nIn := range []int{784, 324} {
		b.Run(fmt.Sprintf("in=%d", nIn), func(b *testing.B) {
			u, err := newUpdate(nn.NewCPU(), nIn)
			if err != nil {
				b.Fatal(err)
			}
			u.step() // warm-up
			b.ResetTimer()
			for b.Loop() {
				u.step()
			}
			goMS := b.Elapsed().Seconds() * 1e3 / float64(b.N)
			b.StopTimer()
			b.ReportMetric(goMS, "go-ms/update")
			tMS, lib, err := torchUpdate(nIn, b.N, threads)
			if err != nil {
				b.Logf("PyTorch comparison skipped: %v", err)
				return
			}
			b.ReportMetric(tMS, "torch-ms/update")
			b.ReportMetric(goMS/tMS, "go/torch")
			b.Logf("in=%d B=%d threads=%d blas=%s (%s): go %.1f ms/update, torch %.1f ms/update (%s), ratio %.2f",
				nIn, batch, threads, blas.Impl(), runtime.Version(), goMS, tMS, lib, goMS/tMS)
		})
	}
}
