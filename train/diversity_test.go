package train

import (
	"reflect"
	"testing"
)

func TestSharedErrors(t *testing.T) {
	// Four test examples of classes 0..2, three views given as one-hot logits.
	onehot := func(classes ...int) []float32 {
		z := make([]float32, 3*len(classes))
		for i, c := range classes {
			z[3*i+c] = 1
		}
		return z
	}
	p := &Predictions{Views: []string{"a", "b", "c"}, Classes: 3, Labels: []int32{0, 1, 2, 0},
		Logits: [][]float32{
			onehot(0, 2, 1, 1), // wrong on examples 1, 2, 3
			onehot(0, 2, 0, 0), // wrong on 1, 2: the same wrong class as a on 1 only
			onehot(1, 1, 2, 0), // wrong on 0
		}}
	want := []SharedErrors{
		{A: "a", B: "b", BothWrong: 0.5, Independent: 0.75 * 0.5, SameWrong: 0.25},
		{A: "a", B: "c", BothWrong: 0, Independent: 0.75 * 0.25, SameWrong: 0},
		{A: "b", B: "c", BothWrong: 0, Independent: 0.5 * 0.25, SameWrong: 0},
	}
	if got := p.SharedErrors(); !reflect.DeepEqual(got, want) {
		t.Fatalf("SharedErrors = %+v\nwant %+v", got, want)
	}
}
