// Package list parses the comma-separated values of command-line flags
// (--views hog,gabor, --hidden 256,256,256) the same way in every command and tool.
package list

import (
	"fmt"
	"strconv"
	"strings"
)

// Strings splits s at commas, trims spaces and drops empty items.
func Strings(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// PositiveInts parses a comma-separated list of positive integers. Unlike Strings it
// refuses an empty item: in widths (32,,32) one is a number left out, not a slip.
func PositiveInts(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
	}
	var out []int
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer (in %q)", p, s)
		}
		out = append(out, v)
	}
	return out, nil
}

// Ints writes x as PositiveInts reads it.
func Ints(x []int) string {
	s := make([]string, len(x))
	for i, v := range x {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}
