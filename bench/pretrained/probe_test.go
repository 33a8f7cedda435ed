package pretrained

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mct/data"
	"mct/data/pretrained"
)

// TestProbeAccuracy measures how good the pretrained views are: a
// multinomial logistic-regression probe (L2, strength chosen by 5-fold
// cross-validation on the labeled set) trained on 1000 Fashion-MNIST training
// images (the first 100 of each class) and scored on the 10 000 test images,
// for MobileNetV2 and InceptionV3 at their default layers at 96 px, with raw
// pixels as the anchor. It embeds 11 000 images through both networks, so it
// runs only when asked:
//
//	MCT_PRETRAINED_PROBE=1 go test ./bench/pretrained -run ProbeAccuracy -v -timeout 2h
//
// MCT_PRETRAINED_PROBE_VIEWS=pixels,mobilenet_v2 picks views,
// MCT_PRETRAINED_PROBE_TEST=2000 scores on the first 2000 test images only;
// FASHION_MNIST_DIR overrides Debian's /usr/share/datasets/fashion-mnist.
func TestProbeAccuracy(t *testing.T) {
	if os.Getenv("MCT_PRETRAINED_PROBE") == "" {
		t.Skip("set MCT_PRETRAINED_PROBE=1 to run (embeds 11 000 images)")
	}
	dir := os.Getenv("FASHION_MNIST_DIR")
	if dir == "" {
		dir = "/usr/share/datasets/fashion-mnist"
	}
	read := func(name string) *data.IDX {
		x, err := data.ReadIDX(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	trX, trY := read("train-images-idx3-ubyte.gz"), read("train-labels-idx1-ubyte.gz")
	teX, teY := read("t10k-images-idx3-ubyte.gz"), read("t10k-labels-idx1-ubyte.gz")
	const perClass, classes = 100, 10
	h, w := trX.Dims[1], trX.Dims[2]
	var labPix []uint8
	var labY []int
	count := make([]int, classes)
	for i, y := range trY.Data {
		if count[y] < perClass {
			count[y]++
			labPix = append(labPix, trX.Data[i*h*w:(i+1)*h*w]...)
			labY = append(labY, int(y))
		}
	}
	nTest := len(teY.Data)
	if v := os.Getenv("MCT_PRETRAINED_PROBE_TEST"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 || k > nTest {
			t.Fatalf("MCT_PRETRAINED_PROBE_TEST=%q: want 1..%d test images", v, nTest)
		}
		nTest = k
	}
	testY := make([]int, nTest)
	for i, y := range teY.Data[:nTest] {
		testY[i] = int(y)
	}
	nl, nt := len(labY), len(testY)
	all := data.Images{N: nl + nt, H: h, W: w, Pix: append(append([]uint8{}, labPix...), teX.Data[:nTest*h*w]...)}

	views := map[string]func() ([]float32, int){
		"pixels": func() ([]float32, int) {
			x := make([]float32, len(all.Pix))
			for i, p := range all.Pix {
				x[i] = float32(p) / 255
			}
			return x, h * w
		},
	}
	cache, err := pretrained.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"mobilenet_v2", "inception_v3"} {
		views[network] = func() ([]float32, int) {
			m, err := pretrained.Load(cache, network)
			if err != nil {
				t.Fatal(err)
			}
			net, err := m.Compile(pretrained.DefaultLayers[network], pretrained.DefaultSize)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			x, err := net.EmbedImages(all, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: embedded %d images in %v", network, all.N, time.Since(start).Round(time.Second))
			return x, net.OutC
		}
	}
	names := []string{"pixels", "mobilenet_v2", "inception_v3"}
	if v := os.Getenv("MCT_PRETRAINED_PROBE_VIEWS"); v != "" {
		names = strings.Split(v, ",")
	}
	for _, name := range names {
		if views[name] == nil {
			t.Fatalf("MCT_PRETRAINED_PROBE_VIEWS: unknown view %q", name)
		}
		x, d := views[name]()
		lab, test := x[:nl*d], x[nl*d:]
		acc, lambda := probe(lab, labY, test, testY, d, classes)
		t.Logf("%-13s dim %4d  test accuracy %.4f  (L2 %.0e chosen by 5-fold CV on the %d labels)", name, d, acc, lambda, nl)
		fmt.Printf("PROBE %s %.4f\n", name, acc)
	}
}

// probe standardises the features with the labeled set's statistics, picks
// the L2 strength by 5-fold cross-validation, fits on all labeled examples
// and returns the test accuracy.
func probe(lab []float32, labY []int, test []float32, testY []int, d, classes int) (float64, float64) {
	n := len(labY)
	mean, std := make([]float64, d), make([]float64, d)
	for i := range n {
		for j := range d {
			mean[j] += float64(lab[i*d+j]) / float64(n)
		}
	}
	for i := range n {
		for j := range d {
			e := float64(lab[i*d+j]) - mean[j]
			std[j] += e * e / float64(n)
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j])
		if std[j] < 1e-6 {
			std[j] = 1
		}
	}
	norm := func(x []float32) []float64 {
		out := make([]float64, len(x))
		for i, v := range x {
			j := i % d
			out[i] = (float64(v) - mean[j]) / std[j]
		}
		return out
	}
	L, T := norm(lab), norm(test)
	// Every (lambda, fold) fit is independent: run them on all cores.
	lambdas := []float64{1e-4, 1e-3, 1e-2, 1e-1, 1}
	const folds = 5
	correct := make([][folds]int, len(lambdas))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for li, lambda := range lambdas {
		for fold := range folds {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				var trI, vaI []int
				for i := range n {
					if i%folds == fold {
						vaI = append(vaI, i)
					} else {
						trI = append(trI, i)
					}
				}
				wts := fitLogistic(L, labY, trI, d, classes, lambda)
				correct[li][fold] = countCorrect(wts, L, labY, vaI, d, classes)
			})
		}
	}
	wg.Wait()
	best, bestLambda := -1, 0.0
	for li, lambda := range lambdas {
		sum := 0
		for _, c := range correct[li] {
			sum += c
		}
		if sum > best {
			best, bestLambda = sum, lambda
		}
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	wts := fitLogistic(L, labY, all, d, classes, bestLambda)
	testIdx := make([]int, len(testY))
	for i := range testIdx {
		testIdx[i] = i
	}
	return float64(countCorrect(wts, T, testY, testIdx, d, classes)) / float64(len(testY)), bestLambda
}

// fitLogistic minimises the mean softmax cross-entropy plus lambda/2·‖W‖²
// (bias unpenalised) over rows idx. Parameters: W (d×classes) then the bias.
func fitLogistic(x []float64, y []int, idx []int, d, classes int, lambda float64) []float64 {
	return lbfgs(make([]float64, (d+1)*classes), func(w, g []float64) float64 {
		return logLoss(w, g, x, y, idx, d, classes, lambda)
	}, 300)
}

// lbfgs is limited-memory BFGS (Nocedal & Wright, algorithm 7.4, memory 10)
// with a backtracking Armijo line search; f returns the value at w and writes
// the gradient into g. The problem here is smooth and strongly convex.
func lbfgs(w []float64, f func(w, g []float64) float64, iters int) []float64 {
	const m = 10
	n := len(w)
	g := make([]float64, n)
	fx := f(w, g)
	var ss, ys [][]float64
	var rhos []float64
	dir, wn, gn := make([]float64, n), make([]float64, n), make([]float64, n)
	dot := func(a, b []float64) float64 {
		s := 0.0
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	for range iters {
		// Two-loop recursion: dir = −H·g.
		copy(dir, g)
		alpha := make([]float64, len(ss))
		for k := len(ss) - 1; k >= 0; k-- {
			alpha[k] = rhos[k] * dot(ss[k], dir)
			for i := range dir {
				dir[i] -= alpha[k] * ys[k][i]
			}
		}
		if k := len(ss) - 1; k >= 0 {
			gamma := dot(ss[k], ys[k]) / dot(ys[k], ys[k])
			for i := range dir {
				dir[i] *= gamma
			}
		}
		for k := range ss {
			beta := rhos[k] * dot(ys[k], dir)
			for i := range dir {
				dir[i] += ss[k][i] * (alpha[k] - beta)
			}
		}
		for i := range dir {
			dir[i] = -dir[i]
		}
		slope := dot(g, dir)
		if slope >= 0 { // not a descent direction: restart from steepest descent
			ss, ys, rhos = nil, nil, nil
			for i := range dir {
				dir[i] = -g[i]
			}
			slope = dot(g, dir)
		}
		step, fn := 1.0, 0.0
		for range 40 {
			for i := range w {
				wn[i] = w[i] + step*dir[i]
			}
			if fn = f(wn, gn); fn <= fx+1e-4*step*slope {
				break
			}
			step /= 2
		}
		s, yv := make([]float64, n), make([]float64, n)
		for i := range w {
			s[i], yv[i] = wn[i]-w[i], gn[i]-g[i]
		}
		copy(w, wn)
		copy(g, gn)
		done := fx-fn < 1e-10*math.Max(1, math.Abs(fx))
		fx = fn
		if done {
			break
		}
		if sy := dot(s, yv); sy > 1e-12 {
			ss, ys, rhos = append(ss, s), append(ys, yv), append(rhos, 1/sy)
			if len(ss) > m {
				ss, ys, rhos = ss[1:], ys[1:], rhos[1:]
			}
		}
	}
	return w
}

func logLoss(w, grad, x []float64, y []int, idx []int, d, classes int, lambda float64) float64 {
	if grad != nil {
		clear(grad)
	}
	loss := 0.0
	z := make([]float64, classes)
	for _, i := range idx {
		row := x[i*d : (i+1)*d]
		copy(z, w[d*classes:])
		for j, v := range row {
			for c := range classes {
				z[c] += v * w[j*classes+c]
			}
		}
		mx := math.Inf(-1)
		for _, v := range z {
			mx = math.Max(mx, v)
		}
		sum := 0.0
		for c := range z {
			z[c] = math.Exp(z[c] - mx)
			sum += z[c]
		}
		loss -= math.Log(z[y[i]] / sum)
		if grad != nil {
			for c := range z {
				z[c] /= sum
			}
			z[y[i]]--
			for j, v := range row {
				for c := range classes {
					grad[j*classes+c] += v * z[c]
				}
			}
			for c := range classes {
				grad[d*classes+c] += z[c]
			}
		}
	}
	inv := 1 / float64(len(idx))
	loss *= inv
	for k := range d * classes {
		loss += lambda / 2 * w[k] * w[k]
	}
	if grad != nil {
		for k := range grad {
			grad[k] *= inv
		}
		for k := range d * classes {
			grad[k] += lambda * w[k]
		}
	}
	return loss
}

func countCorrect(w, x []float64, y []int, idx []int, d, classes int) int {
	correct := 0
	z := make([]float64, classes)
	for _, i := range idx {
		copy(z, w[d*classes:])
		for j, v := range x[i*d : (i+1)*d] {
			for c := range classes {
				z[c] += v * w[j*classes+c]
			}
		}
		best := 0
		for c := range z {
			if z[c] > z[best] {
				best = c
			}
		}
		if best == y[i] {
			correct++
		}
	}
	return correct
}
