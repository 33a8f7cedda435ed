package data

import (
	"testing"

	"mct/internal/testenv"
)

// skipUnlessCI ends a test whose real input (Fashion-MNIST, MNIST, NumPy, PyTorch) is
// not installed (testenv.Missing).
func skipUnlessCI(tb testing.TB, why any) { tb.Helper(); testenv.Missing(tb, "%v", why) }

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
