//go:build cuda

package main

import (
	"fmt"

	"mct/cudaops"
	"mct/nn"
	"mct/probe"
	"mct/train"
)

// The cuda build (make cuda) adds --device cuda: each rank opens the GPU that the
// placement plan gives its node-local rank.
func init() {
	train.RegisterDevice("cuda", func(localRank, localSize int, precision string) (nn.Backend, error) {
		prec, err := cudaops.ParsePrecision(precision)
		if err != nil {
			return nil, fmt.Errorf("--precision: %w", err)
		}
		rep, err := probe.Inventory()
		if err != nil {
			return nil, err
		}
		pl, err := probe.Plan(localRank, localSize, rep)
		if err != nil {
			return nil, fmt.Errorf("--device cuda: %w", err)
		}
		return cudaops.New(cudaops.Options{Device: pl.Device, Precision: prec})
	})
	// The bf16 tensor-core rate of a large cuBLAS GEMM: the roofline `mct bench` reports
	// its FLOP rate against.
	gemmRoofline = func() (float64, error) {
		b, err := cudaops.New(cudaops.Options{Device: 0, Precision: cudaops.BF16})
		if err != nil {
			return 0, err
		}
		defer b.Close()
		return b.GemmRate(8192, 8192, 8192, 20, true)
	}
}
