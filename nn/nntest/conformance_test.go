package nntest

import (
	"testing"

	"mct/nn"
)

// The CPU backend against itself, at the full shapes: the suite runs end to end, so a
// backend author can trust a failure to be theirs.
func TestConformanceCPU(t *testing.T) { Conformance(t, nn.NewCPU(), Options{}) }
