package train

// SharedErrors says how alike two views' mistakes are on one split (every evaluation
// reports it: the validation split after each MCT epoch, the test split at the end).
// Co-training and MCT move each view towards the others' labels, so an example that
// every view gets wrong, and wrong the same way, stays wrong however long they train:
// the pair's BothWrong against the Independent rate that uncorrelated views would have
// measures how much of that premise holds for a pair of views (fractions of the split's
// examples).
type SharedErrors struct {
	A           string  `json:"a"`
	B           string  `json:"b"`
	BothWrong   float64 `json:"both_wrong"`
	Independent float64 `json:"if_independent"` // errA · errB
	SameWrong   float64 `json:"same_wrong_class"`
}

// SharedErrors of every pair of views, in view order.
func (p *Predictions) SharedErrors() []SharedErrors {
	C, n := p.Classes, len(p.Labels)
	pred := make([][]int, len(p.Logits))
	wrong := make([]int, len(p.Logits))
	for v, z := range p.Logits {
		pred[v] = make([]int, n)
		for i, y := range p.Labels {
			pred[v][i] = argmax(z[i*C : (i+1)*C])
			if pred[v][i] != int(y) {
				wrong[v]++
			}
		}
	}
	frac := func(k int) float64 { return float64(k) / float64(n) }
	var out []SharedErrors
	for a := range pred {
		for b := a + 1; b < len(pred); b++ {
			both, same := 0, 0
			for i, y := range p.Labels {
				if pred[a][i] != int(y) && pred[b][i] != int(y) {
					both++
					if pred[a][i] == pred[b][i] {
						same++
					}
				}
			}
			out = append(out, SharedErrors{A: p.Views[a], B: p.Views[b], BothWrong: frac(both),
				Independent: frac(wrong[a]) * frac(wrong[b]), SameWrong: frac(same)})
		}
	}
	return out
}
