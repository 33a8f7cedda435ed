//go:build !cuda

package main

import (
	"fmt"

	"mct/nn"
)

// open gives the CPU backend; this binary was built without -tags cuda.
func open(name string) (nn.Backend, string, func(), error) {
	if name != "cpu" {
		return nil, "", nil, fmt.Errorf("--backend %s: built without -tags cuda, only --backend cpu is available", name)
	}
	return nn.NewCPU(), "cpu", func() {}, nil
}

// setPrecision accepts fp32 only: the CPU computes in fp32.
func setPrecision(_ nn.Backend, prec string) error {
	if prec != "fp32" {
		return fmt.Errorf("--precision %s: the CPU backend has fp32 only", prec)
	}
	return nil
}

func bf16Rate(nn.Backend, int) (float64, error) {
	return 0, fmt.Errorf("the bf16 GEMM rate needs the cuda build; pass --gemm 0")
}
