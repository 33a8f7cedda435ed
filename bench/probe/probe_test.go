package probe

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"mct/blas"
	"mct/internal/testenv"
	"mct/nn"
)

const (
	batch   = 1024
	classes = 10
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
	rows int
	loss float32
}

func newUpdate(b nn.Backend, nIn, rows int) (*update, error) {
	p, err := nn.NewProbe(b, nn.Config{Arch: "fcnn", In: nIn, Classes: classes}, 1)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	xs, ys := make([]float32, rows*nIn), make([]float32, rows)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	for i := range ys {
		ys[i] = float32(rng.IntN(classes))
	}
	u := &update{p: p, tape: p.NewTape(rows, false), g: p.NewGrads(), opt: nn.NewAdam(p, 1e-4),
		x: b.Alloc(len(xs)), y: b.Alloc(rows), dl: b.Alloc(rows * classes), ce: nn.NewLoss(b, rows), b: b, nIn: nIn, rows: rows}
	b.Upload(u.x, xs)
	b.Upload(u.y, ys)
	return u, nil
}

func (u *update) step() {
	u.g.Zero()
	logits := u.p.Forward(u.tape, u.x, u.rows, nn.Train)
	u.loss = u.ce.CrossEntropy(logits, u.rows, classes, u.y, u.dl, 1)
	u.p.Backward(u.tape, u.dl, u.g)
	u.opt.Step(u.g)
	u.b.Sync()
}

// torchUpdate runs torch_update.py and returns its ms/update and BLAS library.
func torchUpdate(nIn, rows, iters, threads int) (float64, string, error) {
	cmd := exec.Command(testenv.Python, "torch_update.py", strconv.Itoa(nIn), strconv.Itoa(rows),
		strconv.Itoa(iters), strconv.Itoa(threads))
	// torch.set_num_threads does not reach Debian's OpenBLAS, which starts a thread per
	// core: its count is set here, as bench/mct does, so both sides use threads cores.
	cmd.Env = os.Environ()
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" {
		cmd.Env = append(cmd.Env, "OPENBLAS_NUM_THREADS="+strconv.Itoa(threads))
	}
	out, err := cmd.CombinedOutput()
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
// Without torch it times Go alone and says so; a torch that is installed but fails is
// an error, not a skipped comparison.
func BenchmarkUpdate(b *testing.B) {
	threads := runtime.GOMAXPROCS(0)
	noTorch := exec.Command(testenv.Python, "-c", "import torch").Run()
	for _, nIn := range []int{784, 324} {
		b.Run(fmt.Sprintf("in=%d", nIn), func(b *testing.B) {
			u, err := newUpdate(nn.NewCPU(), nIn, batch)
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
			if noTorch != nil {
				b.Logf("PyTorch comparison skipped: %s cannot import torch (apt-get install python3-torch): %v", testenv.Python, noTorch)
				return
			}
			tMS, lib, err := torchUpdate(nIn, batch, b.N, threads)
			if err != nil {
				b.Fatalf("torch_update.py: %v", err)
			}
			b.ReportMetric(tMS, "torch-ms/update")
			b.ReportMetric(goMS/tMS, "go/torch")
			b.Logf("in=%d B=%d threads=%d blas=%s (%s): go %.1f ms/update, torch %.1f ms/update (%s), ratio %.2f",
				nIn, batch, threads, blas.Impl(), runtime.Version(), goMS, tMS, lib, goMS/tMS)
		})
	}
}

// TestUpdateBothSides runs one update of each side of BenchmarkUpdate at a small batch,
// so that `go test ./bench/probe` checks what the benchmark runs: the Go update gives a
// finite loss and torch_update.py prints its time and a BLAS that is OpenBLAS or MKL,
// the baseline bench/RESULTS-probe.md compares against.
func TestUpdateBothSides(t *testing.T) {
	u, err := newUpdate(nn.NewCPU(), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	u.step()
	if l := float64(u.loss); math.IsNaN(l) || math.IsInf(l, 0) || l <= 0 {
		t.Errorf("Go update: loss %v", l)
	}
	testenv.Torch(t, testenv.Python)
	ms, lib, err := torchUpdate(16, 64, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ms <= 0 {
		t.Errorf("torch_update.py: %v ms/update", ms)
	}
	if l := strings.ToLower(lib); !strings.Contains(l, "openblas") && !strings.Contains(l, "mkl") {
		t.Errorf("torch's BLAS is %q, neither OpenBLAS nor MKL: the comparison would be unfair (apt-get install libopenblas0-pthread)", lib)
	}
}
