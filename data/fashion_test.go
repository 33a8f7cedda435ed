package data

import (
	"os"
	"testing"
)

// skipUnlessCI ends a test whose real input (Fashion-MNIST, MNIST, NumPy, PyTorch) is
// not installed: a skip on a developer's machine, a failure under CI (CI set), whose
// setup installs them all, so a check there can never pass by not running.
func skipUnlessCI(tb testing.TB, why any) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("%v (CI installs this: scripts/setup.sh test)", why)
	}
	tb.Skip(why)
}

// fashionMNISTDir is the folder of the installed Fashion-MNIST files
// (locateFashionMNIST's error, on a skip, says where it looked).
func fashionMNISTDir(tb testing.TB) string {
	tb.Helper()
	dir, err := locateFashionMNIST()
	if err != nil {
		skipUnlessCI(tb, err)
	}
	return dir
}

// realFashionMNIST loads the installed Fashion-MNIST files.
func realFashionMNIST(tb testing.TB) *rawData {
	tb.Helper()
	raw, err := loadRaw(builtins["fashion-mnist"], fashionMNISTDir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// firstImages is im cut to its first n images.
func firstImages(im Images, n int) Images {
	im.N, im.Pix = n, im.Pix[:n*im.H*im.W]
	return im
}
