// Package probe benchmarks one probe update (Train forward, cross-entropy, backward,
// Adam step) of the reference FCNN on the CPU backend and, in the same run, the
// same update in PyTorch on the CPU, reporting milliseconds per update and the ratio.
//
//	go test ./bench/probe/ -run '^$' -bench . -benchtime 5x
//
// PyTorch is Debian's /usr/bin/python3 with python3-torch, on as many BLAS threads as
// GOMAXPROCS; without torch the benchmark times Go alone and says so. TestUpdateBothSides
// runs one update of each side at a small batch, so plain `go test` catches a benchmark
// that no longer runs.
//
// Results and the machine they came from are in bench/RESULTS-probe.md.
package probe
