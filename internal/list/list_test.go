package list

import (
	"slices"
	"testing"
)

func TestLists(t *testing.T) {
	if got := Strings(" hog, ,gabor ,"); !slices.Equal(got, []string{"hog", "gabor"}) {
		t.Errorf("Strings = %q", got)
	}
	got, err := PositiveInts("256, 128,64")
	if err != nil || !slices.Equal(got, []int{256, 128, 64}) || Ints(got) != "256,128,64" {
		t.Errorf("PositiveInts = %v, %v; Ints = %q", got, err, Ints(got))
	}
	for _, bad := range []string{"", " , ", "3,0", "-1", "2,x", "1.5", "32,,32", "32,"} {
		if v, err := PositiveInts(bad); err == nil {
			t.Errorf("PositiveInts(%q) = %v, want an error", bad, v)
		}
	}
}
