package data

import (
	"fmt"
	"math"
	"sort"
)

// Split divides the train split into disjoint index sets (indices into the train
// rows, each sorted ascending). Their union is every train index.
type Split struct {
	Labeled, Val, Unlabeled []int
}

// Random streams used by MakeSplit; fixed so a split is a function of its arguments.
const (
	streamLabeled = 1 << 32
	streamVal     = 2 << 32
)

// MakeSplit draws a labeled subset of round(frac·K) train examples (K: the rows whose
// label is known, every row unless some are Unknown) and then a validation slice of val
// examples from the rest of the known rows; everything else, the Unknown rows
// included, is unlabeled. The labeled subset is balanced (equal count per class; the remainder
// of n/classes goes to randomly chosen classes) or stratified (class proportions of
// the train split, largest-remainder rounding); the validation slice is
// stratified. The labeled set depends only on (labels, frac, seed, balanced), not
// on val, so runs with different validation sizes share their labels.
func MakeSplit(labels []int32, classes int, frac float64, val int, seed uint64, balanced bool) (Split, error) {
	if classes < 1 {
		return Split{}, fmt.Errorf("split: classes = %d, want >= 1", classes)
	}
	if !(frac > 0 && frac <= 1) {
		return Split{}, fmt.Errorf("split: labeled fraction %g, want 0 < frac <= 1 (1%% is 0.01)", frac)
	}
	if val < 0 {
		return Split{}, fmt.Errorf("split: validation size %d, want >= 0", val)
	}
	byClass := make([][]int, classes)
	var unknown []int
	for i, y := range labels {
		if y == Unknown {
			unknown = append(unknown, i)
			continue
		}
		if y < 0 || int(y) >= classes {
			return Split{}, fmt.Errorf("split: label %d of train row %d is outside [0, %d)", y, i, classes)
		}
		byClass[y] = append(byClass[y], i)
	}
	for c := range byClass {
		shuffle(byClass[c], seed, streamLabeled+uint64(c))
	}
	known := len(labels) - len(unknown)
	n := int(math.Round(frac * float64(known)))
	if known == 0 {
		return Split{}, fmt.Errorf("split: no train example has a known label (all %d are -1): nothing to learn from", len(labels))
	}
	if n < 1 {
		return Split{}, fmt.Errorf("split: --labeled %g of the %d train examples with a known label is 0 examples: use --labeled %g or more", frac, known, 1/float64(known))
	}
	var take []int
	if balanced {
		take = make([]int, classes)
		for c := range take {
			take[c] = n / classes
		}
		extra := make([]int, classes)
		for c := range extra {
			extra[c] = c
		}
		shuffle(extra, seed, streamLabeled-1)
		for _, c := range extra[:n%classes] {
			take[c]++
		}
	} else {
		take = apportion(byClass, n)
	}
	var s Split
	rest := make([][]int, classes)
	for c, idx := range byClass {
		if take[c] > len(idx) {
			return Split{}, fmt.Errorf("split: class %d has %d train examples, the labeled subset needs %d (use a smaller --labeled, or leave out --balanced)", c, len(idx), take[c])
		}
		s.Labeled = append(s.Labeled, idx[:take[c]]...)
		rest[c] = idx[take[c]:]
	}
	left := known - n
	if val > left {
		fix := "a smaller --labeled"
		if left > 0 {
			fix = fmt.Sprintf("--val %d or less, or a smaller --labeled", left)
		}
		if len(unknown) > 0 {
			return Split{}, fmt.Errorf("split: validation size %d exceeds the %d examples with a known label left after %d labeled (%d of the train labels are -1, unknown): use %s",
				val, left, n, len(unknown), fix)
		}
		return Split{}, fmt.Errorf("split: validation size %d exceeds the %d train examples left after %d labeled: use %s", val, left, n, fix)
	}
	for c := range rest {
		shuffle(rest[c], seed, streamVal+uint64(c))
	}
	vt := apportion(rest, val)
	for c, idx := range rest {
		s.Val = append(s.Val, idx[:vt[c]]...)
		s.Unlabeled = append(s.Unlabeled, idx[vt[c]:]...)
	}
	s.Unlabeled = append(s.Unlabeled, unknown...)
	sort.Ints(s.Labeled)
	sort.Ints(s.Val)
	sort.Ints(s.Unlabeled)
	return s, nil
}

// apportion divides n among the groups in proportion to their sizes by the
// largest-remainder method (ties to the lower class index), never exceeding a group.
func apportion(groups [][]int, n int) []int {
	total := 0
	for _, g := range groups {
		total += len(g)
	}
	out := make([]int, len(groups))
	if total == 0 {
		return out
	}
	type rem struct {
		c    int
		frac float64
	}
	var rems []rem
	given := 0
	for c, g := range groups {
		exact := float64(n) * float64(len(g)) / float64(total)
		out[c] = int(exact)
		given += out[c]
		rems = append(rems, rem{c, exact - float64(out[c])})
	}
	sort.SliceStable(rems, func(i, j int) bool { return rems[i].frac > rems[j].frac })
	for i := 0; given < n; i = (i + 1) % len(rems) {
		if c := rems[i].c; out[c] < len(groups[c]) {
			out[c]++
			given++
		}
	}
	return out
}
