package pretrained

import (
	"context"
	"fmt"
	"mct/internal/logreg"
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
// MCT_FASHION_MNIST_DIR (as for mct itself) overrides Debian's /usr/share/datasets/fashion-mnist.
func TestProbeAccuracy(t *testing.T) {
	if os.Getenv("MCT_PRETRAINED_PROBE") == "" {
		t.Skip("set MCT_PRETRAINED_PROBE=1 to run (embeds 11 000 images)")
	}
	dir := os.Getenv("MCT_FASHION_MNIST_DIR")
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
	var labY []int32
	count := make([]int, classes)
	for i, y := range trY.Data {
		if count[y] < perClass {
			count[y]++
			labPix = append(labPix, trX.Data[i*h*w:(i+1)*h*w]...)
			labY = append(labY, int32(y))
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
	testY := make([]int32, nTest)
	for i, y := range teY.Data[:nTest] {
		testY[i] = int32(y)
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
			x, err := net.EmbedImages(context.Background(), all, t.TempDir(), nil)
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
func probe(lab []float32, labY []int32, test []float32, testY []int32, d, classes int) (float64, float64) {
	n := len(labY)
	v := data.View{Dim: d, Train: lab, Test: test}
	data.Standardize(&v)
	L := v.Train
	rows := func(idx []int) ([]float32, []int32) {
		x, yy := make([]float32, 0, len(idx)*d), make([]int32, 0, len(idx))
		for _, i := range idx {
			x, yy = append(x, L[i*d:(i+1)*d]...), append(yy, labY[i])
		}
		return x, yy
	}
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
				xt, yt := rows(trI)
				xv, yv := rows(vaI)
				correct[li][fold] = logreg.Fit(xt, yt, d, classes, lambda, 300).Correct(xv, yv)
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
	return logreg.Fit(L, labY, d, classes, bestLambda, 300).Accuracy(v.Test, testY), bestLambda
}
