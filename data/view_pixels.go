package data

import "context"

func init() {
	RegisterFamily(FamilyInfo{Name: "pixels", Defaults: "", About: "the raw image scaled to [0, 1] (784 values on 28×28)"}, pixelsFamily)
}

// pixelsFamily is the raw image, H·W values scaled to [0, 1].
func pixelsFamily(_ context.Context, args string, im Images, progress func(done, total int)) (Features, error) {
	a, err := ParseSpecArgs(args)
	if err != nil {
		return Features{}, err
	}
	if err := a.Done(); err != nil {
		return Features{}, err
	}
	d := im.H * im.W
	out := make([]float32, im.N*d)
	for i, p := range im.Pix {
		out[i] = float32(p) / 255
	}
	if progress != nil {
		progress(im.N, im.N)
	}
	return Features{Dim: d, Data: out, Params: map[string]any{"scale": "1/255"}}, nil
}
