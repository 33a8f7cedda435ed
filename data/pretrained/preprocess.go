package pretrained

import "fmt"

// Preprocess turns n grey h×w images (uint8, row-major, one after another)
// into the input both nsfwjs networks expect: pixel/255 (nsfwjs's own
// NSFWJS.infer divides by 255 and does no mean subtraction, for MobileNetV2
// and InceptionV3 alike), bilinearly resized to size×size with
// align_corners=true (as nsfwjs calls tf.image.resizeBilinear), and the grey
// value copied to the three RGB channels. The result is n×size×size×3, NHWC.
func Preprocess(grey []uint8, n, h, w, size int) []float32 {
	if len(grey) != n*h*w || h < 1 || w < 1 || size < 1 {
		panic(fmt.Sprintf("pretrained: Preprocess of %d %dx%d images needs %d bytes, got %d", n, h, w, n*h*w, len(grey)))
	}
	out := make([]float32, n*size*size*3)
	// align_corners maps the corner pixel centres onto each other, so the
	// source coordinate is dst·(in−1)/(out−1); TF uses scale 0 for out = 1.
	scale := func(in int) float64 {
		if size > 1 {
			return float64(in-1) / float64(size-1)
		}
		return 0
	}
	type tap struct {
		lo, hi int
		frac   float32
	}
	taps := func(in int) []tap {
		s := scale(in)
		t := make([]tap, size)
		for i := range t {
			// TF.js computes the source coordinate in float32.
			src := float32(i) * float32(s)
			lo := int(src)
			t[i] = tap{lo: lo, hi: min(lo+1, in-1), frac: src - float32(lo)}
		}
		return t
	}
	ty, tx := taps(h), taps(w)
	parallel(n, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			img := grey[b*h*w : (b+1)*h*w]
			dst := out[b*size*size*3:]
			for y, a := range ty {
				for x, c := range tx {
					p := func(yy, xx int) float32 { return float32(img[yy*w+xx]) / 255 }
					top := p(a.lo, c.lo) + (p(a.lo, c.hi)-p(a.lo, c.lo))*c.frac
					bot := p(a.hi, c.lo) + (p(a.hi, c.hi)-p(a.hi, c.lo))*c.frac
					v := top + (bot-top)*a.frac
					i := (y*size + x) * 3
					dst[i], dst[i+1], dst[i+2] = v, v, v
				}
			}
		}
	})
	return out
}
