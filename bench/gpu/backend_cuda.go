//go:build cuda

package main

import (
	"fmt"

	"mct/cudaops"
	"mct/nn"
)

// open gives the CUDA backend on device 0, or the CPU backend.
func open(name string) (nn.Backend, string, func(), error) {
	switch name {
	case "cpu":
		return nn.NewCPU(), "cpu", func() {}, nil
	case "cuda":
	default:
		return nil, "", nil, fmt.Errorf("--backend %s: want cuda or cpu", name)
	}
	b, err := cudaops.New(cudaops.Options{Device: 0})
	if err != nil {
		return nil, "", nil, err
	}
	i := b.Info()
	desc := fmt.Sprintf("%s (cc %s, driver %d, %s, cuBLAS %d, kernels %s)", i.Device, i.CC, i.Driver, i.NVRTC, i.CUBLASVersion, i.Arch)
	return b, desc, func() { b.Close() }, nil
}

// setPrecision switches the GEMM precision of the CUDA backend.
func setPrecision(b nn.Backend, prec string) error {
	g, ok := b.(*cudaops.Backend)
	if !ok {
		if prec != "fp32" {
			return fmt.Errorf("--precision %s: the CPU backend has fp32 only", prec)
		}
		return nil
	}
	p, err := cudaops.ParsePrecision(prec)
	if err != nil {
		return err
	}
	g.SetPrecision(p)
	return nil
}

func bf16Rate(b nn.Backend, n int) (float64, error) {
	g, ok := b.(*cudaops.Backend)
	if !ok {
		return 0, fmt.Errorf("the bf16 GEMM rate needs --backend cuda; pass --gemm 0")
	}
	return g.GemmRate(n, n, n, 20, true)
}
