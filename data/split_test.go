package data

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fakeLabels returns n labels over classes with unequal class sizes.
func fakeLabels(n, classes int) []int32 {
	y := make([]int32, n)
	for i := range y {
		y[i] = int32((i * i / 7) % classes)
	}
	return y
}

func TestMakeSplitFashionSizes(t *testing.T) {
	y := make([]int32, 60000) // Fashion-MNIST: 6000 per class
	for i := range y {
		y[i] = int32(i % 10)
	}
	s, err := MakeSplit(y, 10, 0.01, 5000, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Labeled) != 600 || len(s.Val) != 5000 || len(s.Unlabeled) != 54400 {
		t.Fatalf("sizes %d %d %d, want 600 5000 54400", len(s.Labeled), len(s.Val), len(s.Unlabeled))
	}
	for c, n := range classCounts(y, s.Labeled, 10) {
		if n != 60 {
			t.Errorf("class %d has %d labeled, want 60", c, n)
		}
	}
	for c, n := range classCounts(y, s.Val, 10) {
		if n != 500 {
			t.Errorf("class %d has %d validation examples, want 500", c, n)
		}
	}
	checkPartition(t, s, len(y))
}

func TestMakeSplitStratifiedAndDeterministic(t *testing.T) {
	y := fakeLabels(10000, 7)
	total := classCounts(y, nil, 7)
	s, err := MakeSplit(y, 7, 0.05, 1000, 42, false)
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, s, len(y))
	if len(s.Labeled) != 500 || len(s.Val) != 1000 {
		t.Fatalf("sizes %d %d", len(s.Labeled), len(s.Val))
	}
	for c, n := range classCounts(y, s.Labeled, 7) {
		exact := 500 * float64(total[c]) / 10000
		if float64(n) < exact-1 || float64(n) > exact+1 {
			t.Errorf("class %d: %d labeled, proportional share %.1f", c, n, exact)
		}
	}
	again, _ := MakeSplit(y, 7, 0.05, 1000, 42, false)
	if !reflect.DeepEqual(s, again) {
		t.Error("same arguments gave a different split")
	}
	other, _ := MakeSplit(y, 7, 0.05, 1000, 43, false)
	if reflect.DeepEqual(s.Labeled, other.Labeled) {
		t.Error("seeds 42 and 43 gave the same labeled set")
	}
	noVal, _ := MakeSplit(y, 7, 0.05, 0, 42, false)
	if !reflect.DeepEqual(s.Labeled, noVal.Labeled) {
		t.Error("the labeled set changed with the validation size")
	}
	// Balanced with a remainder: 503 over 7 classes is 71 or 72 each.
	b, err := MakeSplit(y, 7, 0.0503, 0, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	for c, n := range classCounts(y, b.Labeled, 7) {
		if n != 71 && n != 72 {
			t.Errorf("balanced class %d: %d", c, n)
		}
	}
}

func TestMakeSplitErrors(t *testing.T) {
	y := fakeLabels(100, 3)
	for _, tc := range []struct {
		y       []int32
		frac    float64
		val     int
		balance bool
		want    string
	}{
		{y, 0, 10, false, "want 0 < frac <= 1"},
		{y, 1.5, 10, false, "want 0 < frac <= 1"},
		{y, 0.5, 60, false, "validation size 60 exceeds the 50 train examples left after 50 labeled: use --val 50 or less, or a smaller --labeled"},
		{y, 1, 1, false, "exceeds the 0 train examples left after 100 labeled: use a smaller --labeled"},
		{append([]int32{-1, -1}, y[:10]...), 0.5, 6, false, "validation size 6 exceeds the 5 examples with a known label left after 5 labeled (2 of the train labels are -1, unknown): use --val 5 or less"},
		{y, 0.003, 0, false, "--labeled 0.003 of the 100 train examples with a known label is 0 examples: use --labeled 0.01 or more"},
		{[]int32{-1, -1, -1}, 0.5, 0, false, "no train example has a known label (all 3 are -1): nothing to learn from"},
		{[]int32{0, 1, 5}, 0.5, 0, false, "label 5 of train row 2 is outside [0, 3)"},
		{[]int32{0, 0, 0, 1, 2, 2}, 1, 0, true, "class 1 has 1 train examples, the labeled subset needs 2 (use a smaller --labeled, or leave out --balanced)"},
	} {
		_, err := MakeSplit(tc.y, 3, tc.frac, tc.val, 1, tc.balance)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("frac %g val %d: error %v, want %q", tc.frac, tc.val, err, tc.want)
		}
	}
}

// TestMakeSplitUnknownLabels: rows labelled -1 (truly unlabeled) are always unlabeled;
// the labeled fraction and the validation slice come from the known rows only.
func TestMakeSplitUnknownLabels(t *testing.T) {
	y := fakeLabels(1000, 4)
	unknown := map[int]bool{}
	for i := 0; i < len(y); i += 3 {
		y[i], unknown[i] = Unknown, true
	}
	known := len(y) - len(unknown) // 666
	s, err := MakeSplit(y, 4, 0.5, 100, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, s, len(y))
	if len(s.Labeled) != known/2 || len(s.Val) != 100 || len(s.Unlabeled) != len(y)-known/2-100 {
		t.Fatalf("sizes %d %d %d, want %d 100 %d", len(s.Labeled), len(s.Val), len(s.Unlabeled), known/2, len(y)-known/2-100)
	}
	for _, set := range [][]int{s.Labeled, s.Val} {
		for _, i := range set {
			if unknown[i] {
				t.Fatalf("row %d has no label but is in the labeled or validation set", i)
			}
		}
	}
	// Every known label for training: the unlabeled pool is exactly the unknown rows.
	all, err := MakeSplit(y, 4, 1, 0, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Labeled) != known || len(all.Unlabeled) != len(unknown) {
		t.Fatalf("frac 1: %d labeled, %d unlabeled; want %d, %d", len(all.Labeled), len(all.Unlabeled), known, len(unknown))
	}
	for _, i := range all.Unlabeled {
		if !unknown[i] {
			t.Fatalf("known row %d left unlabeled at frac 1", i)
		}
	}
	_, err = MakeSplit(y, 4, 1, 10, 1, false)
	if err == nil || !strings.Contains(err.Error(), "(334 of the train labels are -1, unknown)") {
		t.Errorf("validation beyond the known rows: %v", err)
	}
}

func classCounts(y []int32, idx []int, classes int) []int {
	n := make([]int, classes)
	if idx == nil {
		for _, c := range y {
			n[c]++
		}
		return n
	}
	for _, i := range idx {
		n[y[i]]++
	}
	return n
}

func checkPartition(t *testing.T, s Split, n int) {
	t.Helper()
	seen := make([]int, n)
	for _, set := range [][]int{s.Labeled, s.Val, s.Unlabeled} {
		if !sort.IntsAreSorted(set) {
			t.Error("index set not sorted")
		}
		for _, i := range set {
			seen[i]++
		}
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("train index %d appears %d times across labeled/val/unlabeled", i, k)
		}
	}
}

func TestSamplerEpochsAndResume(t *testing.T) {
	idx := []int{3, 5, 7, 11, 13, 17, 19, 23, 29, 31}
	s := NewSampler(idx, 4, 9)
	var all []int
	for k := 0; k < 5; k++ { // 20 indices = exactly two epochs
		b := s.Next()
		if len(b) != 4 {
			t.Fatalf("batch %d has %d indices", k, len(b))
		}
		all = append(all, b...)
	}
	if s.Epoch() != 2 {
		t.Errorf("Epoch() = %d after two full passes, want 2", s.Epoch())
	}
	for e := 0; e < 2; e++ {
		pass := append([]int(nil), all[10*e:10*e+10]...)
		sort.Ints(pass)
		if !reflect.DeepEqual(pass, idx) {
			t.Fatalf("epoch %d is not a permutation: %v", e, all[10*e:10*e+10])
		}
	}
	if reflect.DeepEqual(all[:10], all[10:]) || reflect.DeepEqual(all[:10], idx) {
		t.Error("epochs are not reshuffled")
	}
	// Resume: a fresh sampler restored to a saved state continues identically.
	a := NewSampler(idx, 3, 9)
	for k := 0; k < 7; k++ {
		a.Next()
	}
	st := a.State()
	var want [][]int
	for k := 0; k < 6; k++ {
		want = append(want, a.Next())
	}
	b := NewSampler(idx, 3, 9)
	b.Restore(st)
	for k := 0; k < 6; k++ {
		if got := b.Next(); !reflect.DeepEqual(got, want[k]) {
			t.Fatalf("after restore batch %d = %v, want %v", k, got, want[k])
		}
	}
	// The seed alone determines the order: batch size does not.
	c, d := NewSampler(idx, 10, 9), NewSampler(idx, 5, 9)
	if got := append(d.Next(), d.Next()...); !reflect.DeepEqual(c.Next(), got) {
		t.Error("batch size changed the permutation")
	}
}

func TestGather(t *testing.T) {
	m := []float32{0, 1, 10, 11, 20, 21}
	dst := make([]float32, 6)
	Gather(dst, m, 2, []int{2, 0, 2})
	if !reflect.DeepEqual(dst, []float32{20, 21, 0, 1, 20, 21}) {
		t.Fatalf("Gather = %v", dst)
	}
	defer func() {
		if recover() == nil {
			t.Error("Gather with a short dst did not panic")
		}
	}()
	Gather(dst[:4], m, 2, []int{0, 1, 2})
}

// TestSamplerSmallSet: a batch larger than the index list spans epochs and still
// holds every index once per epoch; a state from another index list panics.
func TestSamplerSmallSet(t *testing.T) {
	s := NewSampler([]int{4, 8, 15}, 7, 1)
	b := s.Next()
	if len(b) != 7 || s.Epoch() != 2 || s.State() != (SamplerState{Epoch: 2, Pos: 1}) {
		t.Fatalf("batch %v epoch %d state %+v", b, s.Epoch(), s.State())
	}
	for e := 0; e < 2; e++ {
		pass := append([]int(nil), b[3*e:3*e+3]...)
		sort.Ints(pass)
		if !reflect.DeepEqual(pass, []int{4, 8, 15}) {
			t.Fatalf("epoch %d of the batch is %v", e, b[3*e:3*e+3])
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "does not fit 3 indices") {
			t.Errorf("Restore of a foreign state: %v", r)
		}
	}()
	s.Restore(SamplerState{Epoch: 1, Pos: 9})
}
