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

// TestSharedErrorsPanel: the curve starts at the warmed-up probes (epoch 0) and spans the
// pair's both-wrong and same-wrong-class fractions of every epoch.
func TestSharedErrorsPanel(t *testing.T) {
	val := func(both, same float64) Accuracies {
		return Accuracies{SharedErrors: []SharedErrors{{A: "a", B: "b", BothWrong: both, SameWrong: same}}}
	}
	warm := val(0.09, 0.06)
	s := &Summary{Views: []string{"a", "b"}, WarmupValAccuracy: &warm}
	epochs := []mctEpoch{{Val: val(0.10, 0.08)}, {Val: val(0.11, 0.095)}}
	p, err := sharedErrorsPanel(s, epochs)
	if err != nil {
		t.Fatal(err)
	}
	xmin, xmax, ymin, ymax := p.X.Min, p.X.Max, p.Y.Min, p.Y.Max
	if xmin != 0 || xmax != 2 || ymin != 0.06 || ymax != 0.11 {
		t.Fatalf("data range x [%g, %g] y [%g, %g], want x [0, 2] y [0.06, 0.11]", xmin, xmax, ymin, ymax)
	}
}
