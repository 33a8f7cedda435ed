package nntest

import (
	"testing"

	"mct/nn"
)

// The CPU backend against itself: the suite runs end to end (every comparison must be
// exact here), so a backend author can trust a failure to be theirs.
func TestConformanceCPU(t *testing.T) { Conformance(t, nn.NewCPU()) }
