package data

import "testing"

// realFashionMNIST loads the installed Fashion-MNIST files, skipping the test
// when none are found (locateFashionMNIST's error says where it looked).
func realFashionMNIST(tb testing.TB) *rawData {
	tb.Helper()
	src, err := locateFashionMNIST()
	if err != nil {
		tb.Skip(err)
	}
	raw, err := loadRaw(builtins["fashion-mnist"], src)
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
